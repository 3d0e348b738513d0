//! `stats` as text: the figures with bar charts drawn in Unicode block
//! characters, sized to the terminal, coloured only where colour is wanted.

use super::stats::Stats;
use crate::output::count;

/// How the output may look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Columns available.
    pub width: usize,
    /// ANSI colours (a terminal, and no NO_COLOR).
    pub colour: bool,
}

impl Style {
    /// The style for stdout: $COLUMNS, else the terminal's width, else 80;
    /// colour only on a terminal without NO_COLOR (no-color.org).
    pub fn for_stdout(env: &dyn Fn(&str) -> Option<String>) -> Style {
        use std::io::IsTerminal;
        let stdout = std::io::stdout();
        let terminal = stdout.is_terminal();
        let width = env("COLUMNS")
            .and_then(|c| c.trim().parse::<usize>().ok())
            .filter(|w| *w > 0)
            .or_else(|| {
                terminal
                    .then(|| rustix::termios::tcgetwinsize(&stdout).ok())
                    .flatten()
                    .map(|w| usize::from(w.ws_col))
                    .filter(|w| *w > 0)
            })
            .unwrap_or(80);
        let no_color = env("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            width,
            colour: terminal && !no_color,
        }
    }
}

/// Eighths of a cell, from one eighth to a full block.
const EIGHTHS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];

/// A bar of `value` against `max` in at most `cells` columns, at a
/// resolution of an eighth of a column. A non-zero value always shows.
pub fn bar(value: u64, max: u64, cells: usize) -> String {
    if max == 0 || value == 0 || cells == 0 {
        return String::new();
    }
    let eighths = ((u128::from(value) * cells as u128 * 8) / u128::from(max)).max(1) as usize;
    let mut s = "█".repeat(eighths / 8);
    if eighths % 8 > 0 {
        s.push(EIGHTHS[eighths % 8 - 1]);
    }
    s
}

/// Display width of `s` in columns (East Asian wide characters take two).
fn width_of(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x1F300..=0x1FAFF
            | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}

/// `s` cut to `max` columns, with an ellipsis when cut.
fn fit(s: &str, max: usize) -> String {
    if width_of(s) <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = width_of(c.encode_utf8(&mut [0; 4]));
        if w + cw + 1 > max {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

/// A labelled bar chart: one line per row, `label  bar count`, each line at
/// most `style.width` columns.
pub fn chart(rows: &[(String, u64)], style: Style) -> String {
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let label_w = rows.iter().map(|(l, _)| width_of(l)).max().unwrap_or(0);
    let count_w = max.to_string().len();
    // label, two spaces, bar, one space, count.
    let cells = style.width.saturating_sub(label_w + 3 + count_w).max(1);
    let mut out = String::new();
    for (label, n) in rows {
        let pad = " ".repeat(label_w - width_of(label));
        let b = bar(*n, max, cells);
        let b = if style.colour && !b.is_empty() {
            format!("\x1b[36m{b}\x1b[0m")
        } else {
            b
        };
        let sep = if *n == 0 { "" } else { " " };
        out.push_str(&format!("{label}{pad}  {b}{sep}{n}\n"));
    }
    out
}

/// "3 d 4 h 05 min" for a listening time.
pub fn long_duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match (d, h) {
        (0, 0) if m == 0 => format!("{secs} s"),
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m:02} min"),
        _ => format!("{d} d {h} h {m:02} min"),
    }
}

/// The whole `stats` text.
pub fn render(s: &Stats, period: &str, style: Style) -> String {
    let heading = |t: &str| {
        let t = fit(t, style.width);
        if style.colour {
            format!("\x1b[1m{t}\x1b[0m\n")
        } else {
            format!("{t}\n")
        }
    };
    let mut out = String::new();
    let span = match period {
        "all" => "all time".to_owned(),
        "year" => "the last 365 days".to_owned(),
        p => format!("the last {}", p.replace('d', " days")),
    };
    out.push_str(&heading(&format!("Listening stats, {span}")));
    let summary = format!(
        "{}, {} listened, {}",
        count(s.plays, "play", "plays"),
        long_duration(s.listening_secs),
        count(s.artists, "artist", "artists")
    );
    out.push_str(&fit(&summary, style.width));
    out.push('\n');
    if s.plays == 0 {
        out.push_str("No plays recorded in this period.\n");
        return out;
    }
    let list = |title: &str, rows: Vec<(String, u64)>, out: &mut String| {
        out.push('\n');
        out.push_str(&heading(title));
        let w = rows
            .iter()
            .map(|(_, n)| n.to_string().len())
            .max()
            .unwrap_or(1);
        for (i, (name, n)) in rows.iter().enumerate() {
            let line = format!("{:>2}. {n:>w$}  ", i + 1);
            let room = style.width.saturating_sub(width_of(&line)).max(8);
            out.push_str(&format!("{line}{}\n", fit(name, room)));
        }
    };
    let artist = |a: &str| {
        if a.trim().is_empty() {
            "(no artist)".to_owned()
        } else {
            a.to_owned()
        }
    };
    list(
        "Top artists",
        s.top_artists.iter().map(|(a, n)| (artist(a), *n)).collect(),
        &mut out,
    );
    list(
        "Top albums",
        s.top_albums
            .iter()
            .map(|(a, b, n)| (crate::model::describe_names(a, b), *n))
            .collect(),
        &mut out,
    );
    list(
        "Top tracks",
        s.top_tracks
            .iter()
            .map(|(a, t, n)| (crate::model::describe_names(a, t), *n))
            .collect(),
        &mut out,
    );
    out.push('\n');
    out.push_str(&heading(if s.bucket == "month" {
        "Plays per month"
    } else {
        "Plays per day"
    }));
    // From the first day with plays to the last: a week of empty rows
    // before the first play says nothing.
    let first = s.per_period.iter().position(|(_, n)| *n > 0).unwrap_or(0);
    let last = s
        .per_period
        .iter()
        .rposition(|(_, n)| *n > 0)
        .map_or(first, |l| l + 1);
    out.push_str(&chart(&s.per_period[first..last.max(first)], style));
    out.push('\n');
    out.push_str(&heading("Plays per hour of the day"));
    let hours: Vec<(String, u64)> = s
        .per_hour
        .iter()
        .enumerate()
        .map(|(h, n)| (format!("{h:02}:00"), *n))
        .collect();
    out.push_str(&chart(&hours, style));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::stats::Aggregator;

    /// 2024-05-01 00:00:00 UTC.
    const MAY1: u64 = 1_714_521_600;

    #[test]
    fn bars_scale_in_eighths() {
        assert_eq!(bar(10, 10, 4), "████");
        assert_eq!(bar(5, 10, 4), "██");
        // 4 cells × 8 eighths × 1/16 = 2 eighths.
        assert_eq!(bar(1, 16, 4), "▎");
        assert_eq!(bar(1, 1000, 4), "▏", "a play always shows");
        assert_eq!(bar(0, 10, 4), "");
        assert_eq!(bar(3, 0, 4), "");
    }

    #[test]
    fn charts_fit_the_width_and_colour_only_when_asked() {
        let rows: Vec<(String, u64)> = vec![
            ("00:00".into(), 3),
            ("01:00".into(), 120),
            ("02:00".into(), 0),
        ];
        for width in [20, 40, 80, 200] {
            let style = Style {
                width,
                colour: false,
            };
            let text = chart(&rows, style);
            for line in text.lines() {
                assert!(width_of(line) <= width, "{width}: {line:?}");
            }
            // The longest bar fills the room left by label and count.
            let longest = text.lines().nth(1).unwrap();
            assert_eq!(width_of(longest), width, "{longest:?}");
            assert!(!text.contains('\x1b'));
        }
        let coloured = chart(
            &rows,
            Style {
                width: 40,
                colour: true,
            },
        );
        assert!(coloured.contains("\x1b[36m"));
    }

    #[test]
    fn render_respects_width_and_has_every_section() {
        let mut a = Aggregator::new(Some(MAY1), jiff::tz::TimeZone::UTC);
        a.add(
            MAY1 + 3600,
            "日本語のアーティスト",
            "日本語の曲",
            Some("アルバム"),
            None,
            200,
        );
        let s = a.finish(MAY1 + 6 * 86400);
        let text = render(
            &s,
            "7d",
            Style {
                width: 40,
                colour: false,
            },
        );
        for needle in [
            "the last 7 days",
            "1 play,",
            "Top artists",
            "Top albums",
            "Top tracks",
            "Plays per day",
            "Plays per hour",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        for line in text.lines() {
            assert!(width_of(line) <= 40, "{line:?}");
        }
        let narrow = render(
            &s,
            "7d",
            Style {
                width: 24,
                colour: false,
            },
        );
        assert!(narrow.lines().all(|l| width_of(l) <= 24), "{narrow}");
        // One day with plays: one day row, not seven of which six are empty
        // (issue 23, item 16).
        let day_rows = text
            .split("Plays per day\n")
            .nth(1)
            .unwrap()
            .split("\n\n")
            .next()
            .unwrap();
        assert_eq!(day_rows.lines().count(), 1, "{text}");
        assert_eq!(long_duration(90_061), "1 d 1 h 01 min");
        // One short play is not "0 min" (issue 23, item 2).
        assert_eq!(long_duration(35), "35 s");
        assert_eq!(long_duration(0), "0 s");
    }
}

//! Times for display: a leaf that the status, the logs and the commands
//! share.

/// A Unix time as local date and time, for display.
pub(crate) fn local_time(unix: u64) -> String {
    let Some(ts) = i64::try_from(unix)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
    else {
        return unix.to_string();
    };
    ts.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_from_a_server_out_of_range_are_shown_as_numbers() {
        assert_eq!(local_time(u64::MAX), u64::MAX.to_string());
        assert_eq!(local_time(1 << 63), (1u64 << 63).to_string());
        assert_eq!(local_time(300_000_000_000), "300000000000");
    }
}

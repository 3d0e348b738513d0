use std::time::Duration;
use crate::common::icy_station::IcyStation;
use crate::common::mpd::MpdServer;

#[test]
fn explore_station() {
    let station = IcyStation::start("Test FM", &[("Artist A - Song A", 3.0), ("Test FM jingle", 2.0), ("Artist B - Song B", 3.0), ("Artist C - Song C", 100.0)], 60);
    let mpd = MpdServer::start(&[]);
    mpd.cmd("clear");
    mpd.cmd_args("add", &[&station.url()]);
    mpd.cmd("play");
    for _ in 0..24 {
        std::thread::sleep(Duration::from_millis(500));
        let st = mpd.cmd("status");
        let cs = mpd.cmd("currentsong");
        eprintln!("{:?}\n   {:?}", st.iter().filter(|(k,_)| ["state","songid","elapsed","duration","time"].contains(&k.as_str())).collect::<Vec<_>>(), cs);
    }
    mpd.pause();
    std::thread::sleep(Duration::from_secs(3));
    mpd.resume();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        let cs = mpd.cmd("currentsong");
        eprintln!("{:?} {:?}", mpd.state(), cs);
    }
    eprintln!("{:?} {}", station.asked_for_metadata(), mpd.log());
}

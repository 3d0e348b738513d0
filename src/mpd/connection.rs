//! The real MPD: connecting over TCP, Unix or abstract sockets with an
//! optional password, subscribing to the love channels, and the raw
//! `status` + `currentsong` and `readmessages` reads. mpd_client is used
//! here and nowhere else; its errors and events leave as this folder's.

use mpd_client::client::{
    CommandError, ConnectWithPasswordError, ConnectionError, ConnectionEvent, ConnectionEvents,
};
use mpd_client::protocol::{Command, CommandList};

use super::{
    CHANNELS, COMMAND_TIMEOUT, Closed, ConnectError, Event, Message, MpdConnection, MpdSource,
    ReadError, parse_snapshot,
};
use crate::config::{MpdAddress, MpdConfig};
use crate::model::Snapshot;

/// The MPD of the configuration, as the daemon's [`MpdSource`].
#[derive(Debug, Clone)]
pub(crate) struct Mpd {
    config: MpdConfig,
}

impl Mpd {
    /// The MPD at `config`'s address.
    pub(crate) fn new(config: MpdConfig) -> Mpd {
        Mpd { config }
    }
}

impl MpdSource for Mpd {
    type Connection = Client;

    fn address(&self) -> String {
        self.config.address.to_string()
    }

    fn connect(&self) -> impl Future<Output = Result<Client, ConnectError>> + Send {
        connect(&self.config)
    }
}

/// A connection to MPD: commands, and its change events.
#[derive(Debug)]
pub(crate) struct Client {
    client: mpd_client::Client,
    events: ConnectionEvents,
}

/// Connect and authenticate.
///
/// # Errors
///
/// MPD is unreachable, refuses the password, or does not greet in time.
pub(crate) async fn connect(cfg: &MpdConfig) -> Result<Client, ConnectError> {
    let address = cfg.address.to_string();
    let io_err = |source| ConnectError::Io {
        address: address.clone(),
        source,
    };
    let password = cfg.password.as_ref().map(|p| p.expose());
    let connected = tokio::time::timeout(COMMAND_TIMEOUT, async {
        match &cfg.address {
            MpdAddress::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(io_err)?;
                // A dead remote MPD would otherwise go unnoticed until the next
                // command; the kernel's keepalive costs the daemon no wake-ups.
                let _ = socket2::SockRef::from(&stream).set_keepalive(true);
                // mpd_client writes `noidle` right after `idle`; with Nagle's
                // algorithm that small write waits for the delayed ACK of the
                // first, so every read after a wake-up took 40 ms more.
                let _ = stream.set_nodelay(true);
                Ok(mpd_client::Client::connect_with_password_opt(stream, password).await)
            }
            MpdAddress::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(io_err)?;
                Ok(mpd_client::Client::connect_with_password_opt(stream, password).await)
            }
            MpdAddress::Abstract(name) => {
                let stream = connect_abstract(name).map_err(io_err)?;
                Ok(mpd_client::Client::connect_with_password_opt(stream, password).await)
            }
        }
    })
    .await
    .map_err(|_| ConnectError::Protocol {
        address: address.clone(),
        message: "timed out".into(),
    })??;
    let (client, events) = connected.map_err(|e| match e {
        ConnectWithPasswordError::IncorrectPassword => ConnectError::BadPassword(address),
        ConnectWithPasswordError::ProtocolError(e) => ConnectError::Protocol {
            address,
            message: e.to_string(),
        },
    })?;
    Ok(Client { client, events })
}

#[cfg(target_os = "linux")]
fn connect_abstract(name: &str) -> std::io::Result<tokio::net::UnixStream> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    let stream = std::os::unix::net::UnixStream::connect_addr(&addr)?;
    stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(stream)
}

#[cfg(not(target_os = "linux"))]
fn connect_abstract(_name: &str) -> std::io::Result<tokio::net::UnixStream> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

impl From<CommandError> for ReadError {
    fn from(e: CommandError) -> ReadError {
        match e {
            CommandError::ErrorResponse { error, .. } => ReadError::Refused {
                code: error.code,
                message: error.message.into(),
            },
            CommandError::ConnectionClosed => ReadError::Closed,
            other => ReadError::Protocol(other.to_string()),
        }
    }
}

/// What a closed connection means for the user. mpd_client closes the
/// connection when MPD answers `idle` with an error, which in practice is
/// MPD refusing a client without the "read" permission.
fn closed(e: ConnectionError) -> Closed {
    match e {
        ConnectionError::InvalidResponse => Closed::NoReadPermission,
        ConnectionError::Protocol(e) => Closed::Protocol(e.to_string()),
    }
}

impl Client {
    /// The protocol version MPD greeted with.
    pub(crate) fn protocol_version(&self) -> &str {
        self.client.protocol_version()
    }

    /// Read `status` and `currentsong` in one round trip.
    ///
    /// # Errors
    ///
    /// The command failed, the connection closed, or MPD did not answer in time.
    pub(crate) async fn snapshot(&self) -> Result<Snapshot, ReadError> {
        let list = CommandList::new(Command::new("status")).command(Command::new("currentsong"));
        let frames = tokio::time::timeout(COMMAND_TIMEOUT, self.client.raw_command_list(list))
            .await
            .map_err(|_| ReadError::Timeout)??;
        let fields = |i: usize| -> Vec<(&str, &str)> {
            frames
                .get(i)
                .map(|f| f.fields().collect())
                .unwrap_or_default()
        };
        let snapshot = parse_snapshot(&fields(0), &fields(1));
        tracing::debug!(
            state = ?snapshot.state,
            song = snapshot.song.as_ref().map(|s| s.id),
            elapsed = ?snapshot.elapsed,
            "MPD status"
        );
        Ok(snapshot)
    }

    /// Subscribe to [`CHANNELS`].
    ///
    /// # Errors
    ///
    /// MPD refused or did not answer.
    pub(crate) async fn subscribe(&self) -> Result<(), ReadError> {
        for channel in CHANNELS {
            let cmd = Command::new("subscribe").argument(channel);
            match tokio::time::timeout(COMMAND_TIMEOUT, self.client.raw_command(cmd)).await {
                Ok(Ok(_)) => {}
                // Already subscribed (code 56) is fine: a channel per connection.
                Ok(Err(CommandError::ErrorResponse { error, .. })) if error.code == 56 => {}
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(ReadError::Timeout),
            }
        }
        Ok(())
    }

    /// Messages sent to the subscribed channels since the last call.
    ///
    /// # Errors
    ///
    /// The command failed, the connection closed, or MPD did not answer in time.
    pub(crate) async fn messages(&self) -> Result<Vec<Message>, ReadError> {
        let frame = tokio::time::timeout(
            COMMAND_TIMEOUT,
            self.client.raw_command(Command::new("readmessages")),
        )
        .await
        .map_err(|_| ReadError::Timeout)??;
        let mut out = Vec::new();
        let mut channel = None;
        for (k, v) in frame.fields() {
            match k {
                "channel" => channel = Some(v.to_owned()),
                "message" => {
                    if let Some(c) = &channel {
                        out.push(Message {
                            channel: c.clone(),
                            text: v.to_owned(),
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The next change MPD reports, or why the connection closed.
    pub(crate) async fn next_event(&mut self) -> Event {
        match self.events.next().await {
            Some(ConnectionEvent::SubsystemChange(_)) => Event::Changed,
            Some(ConnectionEvent::ConnectionClosed(e)) => Event::Closed(closed(e)),
            None => Event::Closed(Closed::Eof),
        }
    }
}

impl MpdConnection for Client {
    fn subscribe(&mut self) -> impl Future<Output = Result<(), ReadError>> + Send {
        Client::subscribe(self)
    }

    fn snapshot(&mut self) -> impl Future<Output = Result<Snapshot, ReadError>> + Send {
        Client::snapshot(self)
    }

    fn messages(&mut self) -> impl Future<Output = Result<Vec<Message>, ReadError>> + Send {
        Client::messages(self)
    }

    fn next_event(&mut self) -> impl Future<Output = Event> + Send {
        Client::next_event(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;
    use crate::model::PlayState;

    /// A minimal MPD on 127.0.0.1: greets, answers `idle` with one change
    /// (then holds the next until `noidle`), and answers the commands the
    /// daemon sends; `status` outside a command list is refused for want
    /// of permission. Closes when the client sends `close`.
    async fn fake_mpd() -> MpdConfig {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"OK MPD 0.24.0\n").await.unwrap();
            let (mut idles, mut list) = (0, None::<Vec<String>>);
            while let Ok(Some(line)) = lines.next_line().await {
                let line = line.replace('"', "");
                let reply = match line.as_str() {
                    "idle" => {
                        idles += 1;
                        if idles == 1 {
                            "changed: player\nOK\n".to_owned()
                        } else {
                            continue;
                        }
                    }
                    "noidle" => "OK\n".to_owned(),
                    "command_list_ok_begin" => {
                        list = Some(Vec::new());
                        continue;
                    }
                    "command_list_end" => {
                        let mut out = String::new();
                        for cmd in list.take().unwrap_or_default() {
                            out.push_str(match cmd.as_str() {
                                "status" => {
                                    "state: play\nsongid: 7\nelapsed: 12.5\nconsume: oneshot\n"
                                }
                                "currentsong" => {
                                    "file: a.flac\nArtist: A\nTitle: T\nduration: 200.0\n"
                                }
                                _ => "",
                            });
                            out.push_str("list_OK\n");
                        }
                        out + "OK\n"
                    }
                    cmd if list.is_some() => {
                        list.as_mut().unwrap().push(cmd.to_owned());
                        continue;
                    }
                    "subscribe mpdscribble" => "OK\n".to_owned(),
                    "subscribe mpd-scrobbler" => {
                        "ACK [56@0] {subscribe} already subscribed\n".to_owned()
                    }
                    "readmessages" => "channel: mpdscribble\nmessage: love\n\
                                       channel: other\nmessage: hi\nOK\n"
                        .to_owned(),
                    "status" => {
                        "ACK [4@0] {status} you don't have permission for \"status\"\n".to_owned()
                    }
                    "close" => return,
                    _ => "ACK [5@0] {} unknown command\n".to_owned(),
                };
                if write.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
        MpdConfig {
            address: MpdAddress::Tcp("127.0.0.1".into(), port),
            password: None,
        }
    }

    #[tokio::test]
    async fn the_real_client_speaks_in_the_projects_own_types() {
        let mut client = Mpd::new(fake_mpd().await).connect().await.unwrap();
        assert_eq!(client.protocol_version(), "0.24.0");
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(10), client.next_event())
                .await
                .unwrap(),
            Event::Changed
        );
        client.subscribe().await.unwrap();
        let snapshot = client.snapshot().await.unwrap();
        assert_eq!(snapshot.state, PlayState::Playing);
        assert_eq!(snapshot.elapsed, Duration::from_millis(12_500));
        let song = snapshot.song.unwrap();
        assert_eq!((song.id, song.track.title.as_str()), (7, "T"));
        assert_eq!(
            client.messages().await.unwrap(),
            [
                Message {
                    channel: "mpdscribble".into(),
                    text: "love".into()
                },
                Message {
                    channel: "other".into(),
                    text: "hi".into()
                }
            ]
        );
        let refused = client
            .client
            .raw_command(Command::new("status"))
            .await
            .map_err(ReadError::from);
        assert_eq!(
            refused.unwrap_err(),
            ReadError::Refused {
                code: 4,
                message: "you don't have permission for \"status\"".into()
            }
        );
        let _ = client.client.raw_command(Command::new("close")).await;
        assert!(matches!(
            tokio::time::timeout(Duration::from_secs(10), client.next_event())
                .await
                .unwrap(),
            Event::Closed(_)
        ));
    }

    #[tokio::test]
    async fn an_unreachable_mpd_is_an_io_error_naming_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let config = MpdConfig {
            address: MpdAddress::Tcp("127.0.0.1".into(), port),
            password: None,
        };
        let Err(e) = Mpd::new(config).connect().await else {
            panic!("connected to a closed port");
        };
        assert!(matches!(e, ConnectError::Io { .. }), "{e}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }
}

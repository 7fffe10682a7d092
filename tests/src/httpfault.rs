//! A small HTTP/1.1 file server for the installer tests that misbehaves on purpose: it serves
//! a folder on 127.0.0.1 (with `Range: bytes=N-` support) and injects one fault into the
//! responses for paths ending in a chosen suffix: drop the connection mid-body, answer 500 a
//! few times, trickle slowly, lie about Content-Length, or say 404.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    None,
    /// Send `after` bytes of the body, then close; the first `times` responses only.
    DropAfter {
        after: u64,
        times: u32,
    },
    /// Answer `code` to the first `times` requests.
    Status {
        code: u16,
        times: u32,
    },
    /// At most `bytes_per_sec` bytes a second.
    Slow {
        bytes_per_sec: u64,
    },
    /// Claim `extra` more bytes than the file has, every time.
    LyingLength {
        extra: u64,
    },
    /// 404 for matching paths.
    NotFound,
}

pub struct FaultServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// "METHOD path range" of every request, for assertions.
    pub log: Arc<Mutex<Vec<String>>>,
}

struct State {
    root: PathBuf,
    suffix: String,
    fault: Fault,
    hits: Mutex<u32>,
    log: Arc<Mutex<Vec<String>>>,
}

impl FaultServer {
    pub fn start(root: PathBuf, suffix: &str, fault: Fault) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(State {
            root,
            suffix: suffix.to_string(),
            fault,
            hits: Mutex::new(0),
            log: Arc::clone(&log),
        });
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let state = Arc::clone(&state);
                std::thread::spawn(move || {
                    let _ = serve(conn, &state);
                });
            }
        });
        FaultServer {
            port,
            stop,
            thread: Some(thread),
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, st: &State) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let mut range_start = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range:") {
            range_start = v
                .trim()
                .strip_prefix("bytes=")
                .and_then(|r| r.split('-').next())
                .and_then(|s| s.parse::<u64>().ok());
        }
    }
    st.log
        .lock()
        .unwrap()
        .push(format!("{method} {path} {range_start:?}"));
    let mut out = conn;
    let matches = path.ends_with(&st.suffix);
    let hit = if matches {
        let mut h = st.hits.lock().unwrap();
        *h += 1;
        *h
    } else {
        0
    };
    let file = st.root.join(path.trim_start_matches('/'));
    let fault = if matches { st.fault } else { Fault::None };
    let status = |out: &mut TcpStream, code: u16, text: &str| {
        let body = format!("{code} {text}\n");
        write!(
            out,
            "HTTP/1.1 {code} {text}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    match fault {
        Fault::NotFound => return status(&mut out, 404, "Not Found"),
        Fault::Status { code, times } if hit <= times => {
            return status(&mut out, code, "Injected Fault")
        }
        _ => {}
    }
    let Ok(data) = std::fs::read(&file) else {
        return status(&mut out, 404, "Not Found");
    };
    let total = data.len() as u64;
    let start = range_start.unwrap_or(0).min(total);
    let body = &data[start as usize..];
    let claimed = match fault {
        Fault::LyingLength { extra } => body.len() as u64 + extra,
        _ => body.len() as u64,
    };
    if range_start.is_some() {
        write!(
            out,
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {claimed}\r\nContent-Range: bytes {start}-{}/{total}\r\nConnection: close\r\n\r\n",
            total.saturating_sub(1)
        )?;
    } else {
        write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {claimed}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n")?;
    }
    if method == "HEAD" {
        return Ok(());
    }
    match fault {
        Fault::DropAfter { after, times } if hit <= times => {
            let n = (after as usize).min(body.len());
            out.write_all(&body[..n])?;
            out.flush()?;
            let _ = out.shutdown(std::net::Shutdown::Both);
            Ok(())
        }
        Fault::Slow { bytes_per_sec } => {
            let step = (bytes_per_sec / 10).max(1) as usize;
            for c in body.chunks(step) {
                out.write_all(c)?;
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        }
        _ => {
            out.write_all(body)?;
            out.flush()?;
            let _ = out.shutdown(std::net::Shutdown::Write);
            // Let the client read everything before the socket closes.
            let mut sink = [0u8; 64];
            let _ = out.read(&mut sink);
            Ok(())
        }
    }
}

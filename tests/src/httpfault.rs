//! A small HTTP/1.1 file server for the installer tests that misbehaves on purpose: it serves
//! a folder on 127.0.0.1 (with `Range: bytes=N-`, `If-Range`, an ETag and a Last-Modified per
//! file) and injects one fault into the responses for paths ending in a chosen suffix: drop the
//! connection mid-body, answer 500 a few times, trickle slowly, lie about Content-Length, say
//! 404, stall, drip a byte at a time, ignore Range, or change the file between requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// Send `after` bytes of the body, then nothing (the connection stays open); the first
    /// `times` responses only.
    Stall {
        after: u64,
        times: u32,
    },
    /// One byte every `interval_ms`, every time.
    Drip {
        interval_ms: u64,
    },
    /// The first response drops after `after` bytes; Range requests then get 200 and the
    /// whole file (a server without range support behind a proxy that drops).
    IgnoreRange {
        after: u64,
    },
    /// The first response (the file at PATH) drops after `after` bytes; later requests are
    /// answered from PATH.changed, a different file, as if a new release replaced it. With
    /// `if_range`, a Range request whose If-Range no longer matches gets 200 and the whole new
    /// file (RFC 9110); without, the server splices: 206 of the new file. With `validators`
    /// false, no ETag or Last-Modified is sent at all.
    Changed {
        after: u64,
        if_range: bool,
        validators: bool,
    },
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
    stop: Arc<AtomicBool>,
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
            stop: Arc::clone(&stop),
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

/// What the client asked for.
struct Request {
    method: String,
    path: String,
    range_start: Option<u64>,
    if_range: Option<String>,
}

fn read_request(conn: &TcpStream) -> std::io::Result<Request> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let mut req = Request {
        method: parts.next().unwrap_or("").to_string(),
        path: parts.next().unwrap_or("/").to_string(),
        range_start: None,
        if_range: None,
    };
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        let Some((name, value)) = h.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "range" => {
                req.range_start = value
                    .strip_prefix("bytes=")
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.parse::<u64>().ok())
            }
            "if-range" => req.if_range = Some(value.to_string()),
            _ => {}
        }
    }
    Ok(req)
}

/// The validators of generation `gen` of a file (0: the original, 1: its replacement).
fn etag(len: usize, gen: u32) -> String {
    format!("\"{len:x}-{gen}\"")
}

fn last_modified(gen: u32) -> String {
    format!("Mon, 01 Jan 2024 00:00:0{gen} GMT")
}

fn serve(conn: TcpStream, st: &State) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let req = read_request(&conn)?;
    st.log
        .lock()
        .unwrap()
        .push(format!("{} {} {:?}", req.method, req.path, req.range_start));
    let mut out = conn;
    let matches = req.path.ends_with(&st.suffix);
    let hit = if matches {
        let mut h = st.hits.lock().unwrap();
        *h += 1;
        *h
    } else {
        0
    };
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
    let file = st.root.join(req.path.trim_start_matches('/'));
    // Which generation of the file this answer comes from.
    let gen = match fault {
        Fault::Changed { .. } if hit > 1 => 1,
        _ => 0,
    };
    let path = if gen == 1 {
        PathBuf::from(format!("{}.changed", file.display()))
    } else {
        file
    };
    let Ok(data) = std::fs::read(&path) else {
        return status(&mut out, 404, "Not Found");
    };
    let validators = !matches!(
        fault,
        Fault::Changed {
            validators: false,
            ..
        }
    );
    let tag = etag(data.len(), gen);
    let date = last_modified(gen);
    let mut range_start = req.range_start;
    if let (Some(v), Fault::Changed { if_range: true, .. }) = (&req.if_range, fault) {
        if *v != tag && *v != date {
            range_start = None;
        }
    }
    if let Fault::IgnoreRange { .. } = fault {
        range_start = None;
    }
    let total = data.len() as u64;
    let start = range_start.unwrap_or(0).min(total);
    let body = &data[start as usize..];
    let claimed = match fault {
        Fault::LyingLength { extra } => body.len() as u64 + extra,
        _ => body.len() as u64,
    };
    let headers = if validators {
        format!("ETag: {tag}\r\nLast-Modified: {date}\r\n")
    } else {
        String::new()
    };
    if range_start.is_some() {
        write!(
            out,
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {claimed}\r\nContent-Range: bytes {start}-{}/{total}\r\n{headers}Connection: close\r\n\r\n",
            total.saturating_sub(1)
        )?;
    } else {
        write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {claimed}\r\nAccept-Ranges: bytes\r\n{headers}Connection: close\r\n\r\n")?;
    }
    if req.method == "HEAD" {
        return Ok(());
    }
    let drop_after = |out: &mut TcpStream, after: u64| {
        let n = (after as usize).min(body.len());
        out.write_all(&body[..n])?;
        out.flush()?;
        let _ = out.shutdown(std::net::Shutdown::Both);
        Ok(())
    };
    match fault {
        Fault::DropAfter { after, times } if hit <= times => drop_after(&mut out, after),
        Fault::IgnoreRange { after } | Fault::Changed { after, .. } if hit == 1 => {
            drop_after(&mut out, after)
        }
        Fault::Stall { after, times } if hit <= times => {
            let n = (after as usize).min(body.len());
            out.write_all(&body[..n])?;
            out.flush()?;
            // Silent until the client gives up or the test ends.
            let t = Instant::now();
            while !st.stop.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(300) {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        }
        Fault::Drip { interval_ms } => {
            for b in body.iter() {
                out.write_all(&[*b])?;
                out.flush()?;
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(interval_ms));
            }
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

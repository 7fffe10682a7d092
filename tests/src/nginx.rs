//! nginx serving a folder on a free 127.0.0.1 port (a release mirror, as operators serve one),
//! stopped when dropped; over HTTPS with a given certificate for mirrors behind a private CA.
//! `.json` goes out as `application/json`, as with nginx's stock
//! mime.types: Vagrant tells a box catalog from a box file by that Content-Type.

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where a VM given `Nginx::guest_nic` finds this server.
pub const GUEST_URL: &str = "http://10.0.2.100";

pub struct Nginx {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Serve `root` (which may not exist yet: nginx looks files up per request).
    pub fn start(root: &Path) -> Nginx {
        Nginx::launch(root, None)
    }

    /// Serve `root` over HTTPS with `cert` and `key` (PEM).
    pub fn start_tls(root: &Path, cert: &Path, key: &Path) -> Nginx {
        Nginx::launch(root, Some((cert, key)))
    }

    fn launch(root: &Path, tls: Option<(&Path, &Path)>) -> Nginx {
        crate::require("nginx");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = dir.path().display();
        let listen = match tls {
            None => format!("listen 127.0.0.1:{port};"),
            Some((cert, key)) => format!(
                "listen 127.0.0.1:{port} ssl; ssl_certificate {}; ssl_certificate_key {};",
                cert.display(),
                key.display()
            ),
        };
        let conf = format!(
            "daemon off; master_process off; worker_processes 1; pid {p}/nginx.pid; error_log {p}/error.log;
             events {{ worker_connections 64; }}
             http {{ access_log off; client_body_temp_path {p}/b; proxy_temp_path {p}/p; fastcgi_temp_path {p}/f;
                     uwsgi_temp_path {p}/u; scgi_temp_path {p}/s; types {{ application/json json; }} default_type application/octet-stream;
                     server {{ {listen} root {root}; }} }}",
            root = root.display()
        );
        fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(10), "nginx did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// qemu's `-nic` for a VM that reaches this server at `GUEST_URL` and nothing else: user
    /// networking restricted to one forward, 10.0.2.100:80. `cmd:` starts one relay (busybox
    /// nc) per guest connection; a `tcp:` target would be one connection made when qemu
    /// starts, shared by every request and closed by nginx's idle timeout before the guest asks.
    pub fn guest_nic(&self) -> String {
        crate::require("busybox");
        format!(
            "user,restrict=on,model=virtio-net-pci,guestfwd=tcp:10.0.2.100:80-cmd:busybox nc 127.0.0.1 {}",
            self.port
        )
    }

    /// `https://127.0.0.1:PORT/<path>` (a server started with `start_tls`).
    pub fn https_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

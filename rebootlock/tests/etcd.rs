//! The reboot lock against a real etcd (Debian's `etcd-server` 3.4, started here on
//! 127.0.0.1 with `--enable-v2=true`, as locksmith needs it), over the v2 keys API and the v3
//! API: many machines at once never hold more slots than `max`, the value is locksmith's JSON
//! where `etcdctl` reads it, a dead holder keeps its slot until unlocked by id, v2 and v3 are
//! separate stores, and an etcd without the v2 API is named.

use rebootlock::etcd_v2::EtcdV2;
use rebootlock::etcd_v3::EtcdV3;
use rebootlock::{
    key_for_group, LockError, RebootLock, Semaphore, SemaphoreError, Store, DEFAULT_KEY,
};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One etcd member on loopback ports, killed when dropped.
struct Etcd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Etcd {
    fn start(v2: bool) -> Etcd {
        let which = Command::new("sh")
            .args(["-c", "command -v etcd"])
            .output()
            .unwrap();
        assert!(
            which.status.success(),
            "etcd is not installed: ci/install-deps installs Debian's etcd-server"
        );
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new("etcd");
        cmd.args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("etcd.log")).unwrap());
        if v2 {
            cmd.arg("--enable-v2=true");
        }
        let child = cmd.spawn().expect("starting etcd");
        let etcd = Etcd {
            child,
            url,
            _dir: dir,
        };
        let start = Instant::now();
        let http = reqwest::blocking::Client::new();
        while http
            .get(format!("{}/health", etcd.url))
            .send()
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "etcd did not come up in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        etcd
    }

    fn lock(&self, key: &str) -> RebootLock<EtcdV2> {
        RebootLock::new(EtcdV2::new(std::slice::from_ref(&self.url), key).unwrap())
    }

    fn lock_v3(&self, key: &str) -> RebootLock<EtcdV3> {
        RebootLock::new(EtcdV3::new(std::slice::from_ref(&self.url), key).unwrap())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 20 machines, `max` 2: each takes a slot (waiting while none is free), "reboots", and gives
/// it back; a watcher reading the key all along never sees more than two holders, and the
/// free count always agrees with them.
#[test]
fn twenty_machines_with_max_two_never_hold_more_than_two_v2() {
    let etcd = Etcd::start(true);
    twenty_machines(|| etcd.lock(DEFAULT_KEY));
}

#[test]
fn twenty_machines_with_max_two_never_hold_more_than_two_v3() {
    let etcd = Etcd::start(false);
    twenty_machines(|| etcd.lock_v3(DEFAULT_KEY));
}

fn twenty_machines<S: Store + Send + 'static>(new: impl Fn() -> RebootLock<S>) {
    let admin = new();
    assert_eq!(admin.status().unwrap(), Semaphore::default());
    assert_eq!(admin.set_max(2).unwrap().0, 1);

    let done = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (done, most, w) = (done.clone(), most.clone(), new());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                let s = w.status().unwrap();
                let held = s.holders().len();
                assert_eq!(s.semaphore + held as i64, s.max, "{s:?}");
                most.fetch_max(held, Ordering::SeqCst);
                reads += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            reads
        })
    };
    let machines: Vec<_> = (0..20)
        .map(|i| {
            let l = new();
            std::thread::spawn(move || {
                let id = format!("{i:032x}");
                let start = Instant::now();
                loop {
                    match l.lock(&id) {
                        Ok(s) => {
                            assert!(s.holders().contains(&id));
                            break;
                        }
                        Err(LockError::Semaphore(SemaphoreError::NoSlot(_))) => {
                            assert!(start.elapsed() < Duration::from_secs(120), "{id} starved");
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => panic!("{id}: {e}"),
                    }
                }
                std::thread::sleep(Duration::from_millis(30));
                l.unlock(&id).unwrap();
            })
        })
        .collect();
    for m in machines {
        m.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let reads = watcher.join().unwrap();
    assert!(reads > 10, "the watcher read the key only {reads} times");
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "the watcher saw at most {} holders: never two at once, or more than two",
        most.load(Ordering::SeqCst)
    );
    let end = admin.status().unwrap();
    assert_eq!((end.semaphore, end.max, end.holders()), (2, 2, &[][..]));
}

/// The value is locksmith's JSON under locksmith's key, where the v2 `etcdctl` reads it; a
/// value written as locksmith writes it is read; a machine that died holding a slot keeps it
/// until `unlock ID`, and others wait meanwhile.
#[test]
fn the_value_is_locksmiths_and_a_dead_holder_keeps_its_slot() {
    let etcd = Etcd::start(true);
    let l = etcd.lock(DEFAULT_KEY);
    l.lock("dead-machine").unwrap();
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "2")
        .args(["--endpoints", &etcd.url, "get"])
        .arg(format!("/{DEFAULT_KEY}"))
        .output()
        .expect("etcdctl (Debian's etcd-client)");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"semaphore":0,"max":1,"holders":["dead-machine"]}"#
    );
    // Nobody else gets a slot while the dead holder has it.
    assert_eq!(
        l.lock("other"),
        Err(LockError::Semaphore(SemaphoreError::NoSlot(0)))
    );
    l.unlock("dead-machine").unwrap();
    l.lock("other").unwrap();

    // A group's key, written as locksmith writes it (form value, prevExist=false).
    let key = key_for_group(Some("web servers"));
    let put = reqwest::blocking::Client::new()
        .put(format!("{}/v2/keys/{key}?prevExist=false", etcd.url))
        .form(&[("value", r#"{"semaphore":1,"max":3,"holders":["a","b"]}"#)])
        .send()
        .unwrap();
    assert!(put.status().is_success(), "{put:?}");
    let g = etcd.lock(&key);
    assert_eq!(g.lock("c").unwrap().holders(), ["a", "b", "c"]);
    assert_eq!(
        g.lock("d"),
        Err(LockError::Semaphore(SemaphoreError::NoSlot(0)))
    );
    assert_eq!(
        l.status().unwrap().holders(),
        ["other"],
        "groups are separate keys"
    );
}

/// etcd 3.4 without `--enable-v2`: the v2 path answers 404; the error names the setting.
#[test]
fn an_etcd_without_the_v2_api_is_named() {
    let etcd = Etcd::start(false);
    let e = etcd.lock(DEFAULT_KEY).status().unwrap_err().to_string();
    assert!(
        e.contains("does not serve the v2 keys API")
            && e.contains("--enable-v2=true")
            && e.contains("LOCKSMITHD_ETCD_API=v3"),
        "{e}"
    );
}

#[test]
fn no_etcd_is_unreachable_naming_the_endpoints() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let l = RebootLock::new(EtcdV2::new(std::slice::from_ref(&url), DEFAULT_KEY).unwrap());
    let e = l.status().unwrap_err().to_string();
    assert!(
        e.contains("no etcd endpoint answered") && e.contains(&url),
        "{e}"
    );
}

/// The v3 store keeps locksmith's JSON under the same key (`etcdctl get` reads it), and it is
/// not the v2 store: a slot taken through one API is not seen through the other, which is why
/// the API is chosen and never guessed.
#[test]
fn v3_keeps_the_same_json_in_a_separate_store() {
    let etcd = Etcd::start(true);
    let v3 = etcd.lock_v3(DEFAULT_KEY);
    v3.lock("machine-a").unwrap();
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &etcd.url,
            "get",
            "--print-value-only",
            DEFAULT_KEY,
        ])
        .output()
        .expect("etcdctl (Debian's etcd-client)");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"semaphore":0,"max":1,"holders":["machine-a"]}"#
    );
    let v2 = etcd.lock(DEFAULT_KEY);
    assert_eq!(
        v2.status().unwrap(),
        Semaphore::default(),
        "v2 sees its own store"
    );
    v2.lock("machine-b").unwrap();
    assert_eq!(v3.status().unwrap().holders(), ["machine-a"]);
}

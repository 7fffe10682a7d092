//! `coreos-build serve`: the Omaha update service, answering `POST /v1/update/` as Nebraska
//! does from a mirror tree `ROOT/<channel>/<board>/<version>/` (as `release --output
//! ROOT/<channel>` writes it), and serving the tree's files for fleets small enough to
//! download from it. Stateless: the mirror is the only input and every decision a pure
//! function of it and the request, so replicas behind a load balancer agree; events go to a
//! JSON-lines log that `serve --progress LOG` summarises.
//!
//! - `catalog`: each channel's current release and its payload's hashes, rescanned;
//! - `decide`: update, no update or error for one request (never a downgrade; rollout);
//! - `events`: the event log and the fleet's progress.

mod catalog;
mod decide;
mod events;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use catalog::Catalog;
use events::{EventLine, EventLog};
use omaha::{Reply, Request};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(clap::Args)]
#[command(after_help = "Examples:
  coreos-build serve --mirror /srv/mirror --listen 0.0.0.0:8080 --public-url http://updates.example.com
  coreos-build serve --mirror /srv/mirror --rollout 10 --event-log /var/log/coreos-updates.jsonl
  coreos-build serve --progress /var/log/coreos-updates.jsonl

Machines point SERVER= in /etc/coreos/update.conf at http://HOST:PORT/v1/update/ and follow the
channel GROUP= names; a channel whose current release is older than a machine's version
answers noupdate, so switching channels never downgrades.")]
pub struct Args {
    /// The mirror: ROOT/<channel>/<board>/current -> <version>/coreos_production_update.gz.
    #[arg(long, value_name = "ROOT", required_unless_present = "progress")]
    mirror: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Base URL machines download payloads from: this server (the default) or any web server or
    /// CDN serving the same tree.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Offer a new release to this share of machines (by a hash of machine-id and version,
    /// the same on every replica).
    #[arg(long, value_name = "PERCENT", default_value_t = 100,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    rollout: u8,
    /// Append every event machines report to this file, one JSON line each.
    #[arg(long, value_name = "FILE")]
    event_log: Option<PathBuf>,
    /// Seconds between rescans of the mirror (a new `current` is offered after at most this).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    rescan: u64,
    /// Print the fleet's progress from an event log (machines by version and state) and exit.
    #[arg(long, value_name = "LOG", conflicts_with = "mirror")]
    progress: Option<PathBuf>,
}

struct Service {
    catalog: RwLock<Arc<Catalog>>,
    rollout: u8,
    log: EventLog,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(log) = &args.progress {
        return print_progress(log);
    }
    let root = args.mirror.clone().expect("clap requires --mirror");
    let root = root
        .canonicalize()
        .with_context(|| format!("mirror {}", root.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args, root))
}

async fn serve(args: Args, root: PathBuf) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let local = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let catalog = Catalog::scan(&root, &public_url, None)?;
    report(&catalog);
    let service = Arc::new(Service {
        catalog: RwLock::new(Arc::new(catalog)),
        rollout: args.rollout,
        log: EventLog::open(args.event_log.as_deref())?,
    });
    spawn_rescan(service.clone(), root.clone(), public_url, args.rescan);
    let app = axum::Router::new()
        .route("/v1/update", post(update))
        .route("/v1/update/", post(update))
        .layer(DefaultBodyLimit::max(omaha::MAX_DOCUMENT))
        .fallback_service(tower_http::services::ServeDir::new(&root))
        .with_state(service);
    // Scripts and tests read the address (the port when --listen asks for port 0).
    println!("coreos-build serve: listening on http://{local}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")
}

fn report(c: &Catalog) {
    for ((channel, board), r) in &c.releases {
        tracing::info!(
            "{channel}/{board}: {} ({} bytes, sha256 {})",
            r.version,
            r.offer.size,
            r.offer.sha256
        );
    }
    for p in &c.problems {
        tracing::warn!("{p}");
    }
}

fn spawn_rescan(service: Arc<Service>, root: PathBuf, public_url: String, every: u64) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(every.max(1)));
        let old = service
            .catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match Catalog::scan(&root, &public_url, Some(&old)) {
            Ok(new) => {
                let changed = new
                    .releases
                    .iter()
                    .any(|(k, r)| old.releases.get(k).map(|o| &o.offer) != Some(&r.offer))
                    || new.releases.len() != old.releases.len();
                if changed {
                    report(&new);
                }
                *service.catalog.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
            }
            Err(e) => tracing::warn!(
                "rescanning {}: {e:#}; keeping the last scan",
                root.display()
            ),
        }
    });
}

async fn update(State(service): State<Arc<Service>>, body: Bytes) -> Response {
    let req = match std::str::from_utf8(&body)
        .map_err(|e| e.to_string())
        .and_then(|text| Request::parse(text).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not an Omaha request: {e}\n"),
            )
                .into_response()
        }
    };
    let catalog = service
        .catalog
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let answer = req
        .update_check
        .then(|| decide::decide(&catalog, &req, service.rollout));
    tracing::debug!(
        "{} {}/{} {}: {answer:?}",
        req.app.machine_id,
        req.app.track,
        req.app.board,
        req.app.version
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    service.log.write(&EventLine::from_request(&req, now));
    let xml = Reply {
        app_id: &req.app.app_id,
        answer,
        ping: req.ping,
        events: req.events.len(),
    }
    .to_xml();
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

fn print_progress(log: &std::path::Path) -> Result<()> {
    let table = events::progress(log)?;
    println!("{:<20} {:<28} {:>8}", "VERSION", "STATE", "MACHINES");
    for ((version, state), n) in &table {
        println!("{version:<20} {state:<28} {n:>8}");
    }
    println!(
        "{:<20} {:<28} {:>8}",
        "",
        "total",
        table.values().sum::<usize>()
    );
    Ok(())
}

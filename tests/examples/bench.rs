//! The benchmark's helper binary (driven by `bench/run`, not run in CI).
//!
//! Subcommands, each printing one figure (or nothing) on stdout:
//!
//! - `serve DIR DELAY_MS RATE_MIB`: start Garage on 127.0.0.1 (the tests'
//!   [`e2e::Garage`]) and a [`DelayProxy`] in front of it; write `DIR/env`
//!   (shell variables: endpoints, bucket, region) and `DIR/passwd`
//!   (`KEY:SECRET`, mode 0600); serve until stdin closes.
//! - `limit-get ENDPOINT KEY STREAMS PART_MIB`: the raw read limit, parallel
//!   ranged GETs of one object by our own store client (MiB/s).
//! - `limit-put ENDPOINT KEY SIZE_MIB STREAMS PART_MIB`: the raw write
//!   limit, one multipart upload with parallel parts (MiB/s).
//! - `put-random ENDPOINT KEY SIZE_MIB`: upload an object of random bytes.
//! - `populate ENDPOINT PREFIX COUNT SIZE [DIRS]`: PUT `COUNT` objects of
//!   `SIZE` random bytes, `PREFIX[dNNN/]fNNNNN`, many at once.
//! - `read-files DIR COUNT THREADS`: read `DIR/fNNNNN` whole through the
//!   filesystem with `THREADS` threads (seconds).
//! - `create-files DIR COUNT SIZE THREADS`: create and write them (seconds).
//! - `ttfb DIR COUNT`: mean time from open to the first byte (ms).
//!
//! Credentials come from `BENCH_DIR/passwd` (environment `BENCH_DIR`),
//! never from the command line. Object data is random, because Garage
//! compresses and deduplicates blocks.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use e2e::Garage;
use e2e::delay_proxy::{DelayProxy, LinkProfile};
use futures::StreamExt;
use ossfs_rs::store::credentials::StaticProvider;
use ossfs_rs::store::{
    ByteRange, ClientConfig, CompletedPart, Credentials, ObjectStore, Provider, PutOptions,
    RestClient,
};
use rand::RngCore;

const MIB: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error("usage: {0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("garage: {0}")]
    Garage(#[from] e2e::GarageError),
    #[error("store: {0}")]
    Store(#[from] ossfs_rs::store::StoreError),
    #[error("{0}")]
    Other(String),
}

type Result<T> = std::result::Result<T, BenchError>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T> {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BenchError::Usage(format!("argument {i} ({what}) missing or invalid")))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(args: &[String]) -> Result<()> {
    let cmd = args.first().map(String::as_str).unwrap_or("");
    match cmd {
        "serve" => serve(
            Path::new(&arg::<String>(args, 1, "DIR")?),
            arg(args, 2, "DELAY_MS")?,
            arg(args, 3, "RATE_MIB")?,
        ),
        "limit-get" => {
            let store = store(&arg::<String>(args, 1, "ENDPOINT")?)?;
            let key: String = arg(args, 2, "KEY")?;
            let streams: usize = arg(args, 3, "STREAMS")?;
            let part: u64 = arg(args, 4, "PART_MIB")?;
            runtime()?.block_on(limit_get(store, &key, streams, part * MIB))
        }
        "limit-put" => {
            let store = store(&arg::<String>(args, 1, "ENDPOINT")?)?;
            let key: String = arg(args, 2, "KEY")?;
            let size: u64 = arg(args, 3, "SIZE_MIB")?;
            let streams: usize = arg(args, 4, "STREAMS")?;
            let part: u64 = arg(args, 5, "PART_MIB")?;
            runtime()?.block_on(limit_put(
                store,
                &key,
                size * MIB,
                streams,
                part * MIB,
                true,
            ))
        }
        "put-random" => {
            let store = store(&arg::<String>(args, 1, "ENDPOINT")?)?;
            let key: String = arg(args, 2, "KEY")?;
            let size: u64 = arg(args, 3, "SIZE_MIB")?;
            runtime()?.block_on(limit_put(store, &key, size * MIB, 8, 16 * MIB, false))
        }
        "populate" => {
            let store = store(&arg::<String>(args, 1, "ENDPOINT")?)?;
            let prefix: String = arg(args, 2, "PREFIX")?;
            let count: usize = arg(args, 3, "COUNT")?;
            let size: usize = arg(args, 4, "SIZE")?;
            let dirs: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(0);
            runtime()?.block_on(populate(store, &prefix, count, size, dirs))
        }
        "read-files" => read_files(
            Path::new(&arg::<String>(args, 1, "DIR")?),
            arg(args, 2, "COUNT")?,
            arg(args, 3, "THREADS")?,
        ),
        "create-files" => create_files(
            Path::new(&arg::<String>(args, 1, "DIR")?),
            arg(args, 2, "COUNT")?,
            arg(args, 3, "SIZE")?,
            arg(args, 4, "THREADS")?,
        ),
        "ttfb" => ttfb(
            Path::new(&arg::<String>(args, 1, "DIR")?),
            arg(args, 2, "COUNT")?,
        ),
        _ => Err(BenchError::Usage(
            "serve|limit-get|limit-put|put-random|populate|read-files|create-files|ttfb ...".into(),
        )),
    }
}

fn bench_dir() -> Result<PathBuf> {
    std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| BenchError::Usage("set BENCH_DIR to the directory `serve` wrote".into()))
}

/// Read `KEY=VALUE` lines of `BENCH_DIR/env`.
fn env_value(name: &str) -> Result<String> {
    let text = std::fs::read_to_string(bench_dir()?.join("env"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .map(|v| v.trim_matches('\'').to_string())
        .ok_or_else(|| BenchError::Other(format!("{name} missing from the env file")))
}

fn store(endpoint: &str) -> Result<Arc<dyn ObjectStore>> {
    let passwd = std::fs::read_to_string(bench_dir()?.join("passwd"))?;
    let (id, secret) = passwd
        .trim()
        .split_once(':')
        .ok_or_else(|| BenchError::Other("passwd file is not KEY:SECRET".into()))?;
    let mut config = ClientConfig::new(Provider::S3, endpoint, env_value("BUCKET")?);
    config.region = Some(env_value("REGION")?);
    config.path_style = true;
    config.first_byte_timeout = Duration::from_secs(60);
    config.read_timeout = Duration::from_secs(60);
    let provider = Arc::new(StaticProvider::new(
        Credentials::new(id, secret),
        "benchmark passwd file",
    ));
    let client = RestClient::new(config, provider).map_err(|e| BenchError::Other(e.to_string()))?;
    Ok(Arc::new(client))
}

fn serve(dir: &Path, delay_ms: u64, rate_mib: u64) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let garage = Garage::start()?;
    let rt = runtime()?;
    let profile = LinkProfile::symmetric(
        Duration::from_millis(delay_ms),
        (rate_mib > 0).then_some(rate_mib * MIB),
    );
    let proxy = rt.block_on(DelayProxy::start(garage.s3_addr(), profile))?;
    let passwd = dir.join("passwd");
    let _ = std::fs::remove_file(&passwd);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(&passwd)?.write_all(
        format!(
            "{}:{}\n",
            garage.access_key_id(),
            garage.secret_access_key()
        )
        .as_bytes(),
    )?;
    let env = format!(
        "ENDPOINT='{}'\nWAN_ENDPOINT='{}'\nBUCKET='{}'\nREGION='{}'\nGARAGE_DIR='{}'\n",
        garage.endpoint(),
        proxy.endpoint(),
        garage.bucket(),
        garage.region(),
        garage.dir().display()
    );
    std::fs::write(dir.join("env.tmp"), env)?;
    std::fs::rename(dir.join("env.tmp"), dir.join("env"))?;
    // Serve until our parent closes stdin (or dies).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(proxy);
    drop(garage);
    Ok(())
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> String {
    format!("{:.1}", bytes as f64 / MIB as f64 / elapsed.as_secs_f64())
}

async fn limit_get(
    store: Arc<dyn ObjectStore>,
    key: &str,
    streams: usize,
    part: u64,
) -> Result<()> {
    let size = store.head(key).await?.size;
    let parts: Vec<ByteRange> = (0..size.div_ceil(part))
        .map(|i| ByteRange::new(i * part, ((i + 1) * part).min(size)))
        .collect();
    let started = Instant::now();
    let total: u64 = futures::stream::iter(parts)
        .map(|range| {
            let store = store.clone();
            async move {
                let mut got = 0u64;
                let mut body = store.get(key, Some(range)).await?.body;
                while let Some(chunk) = body.next().await {
                    got += chunk?.len() as u64;
                }
                Ok::<u64, BenchError>(got)
            }
        })
        .buffer_unordered(streams.max(1))
        .fold(
            Ok::<u64, BenchError>(0),
            |acc, r| async move { Ok(acc? + r?) },
        )
        .await?;
    if total != size {
        return Err(BenchError::Other(format!("read {total} of {size} bytes")));
    }
    println!("{}", mib_per_s(total, started.elapsed()));
    Ok(())
}

fn random_bytes(n: usize) -> Bytes {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    Bytes::from(buf)
}

async fn limit_put(
    store: Arc<dyn ObjectStore>,
    key: &str,
    size: u64,
    streams: usize,
    part: u64,
    report: bool,
) -> Result<()> {
    let count = size.div_ceil(part);
    // Distinct random parts, made before the clock starts.
    let bodies: Vec<Bytes> = (0..count)
        .map(|i| random_bytes((size - i * part).min(part) as usize))
        .collect();
    let started = Instant::now();
    let id = store.create_multipart(key, &PutOptions::default()).await?;
    let mut parts: Vec<CompletedPart> = futures::stream::iter(bodies.into_iter().enumerate())
        .map(|(i, body)| {
            let store = store.clone();
            let id = id.clone();
            async move {
                let number = i as u32 + 1;
                let etag = store.upload_part(key, &id, number, body).await?;
                Ok::<CompletedPart, BenchError>(CompletedPart {
                    part_number: number,
                    etag,
                })
            }
        })
        .buffer_unordered(streams.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    parts.sort_by_key(|p| p.part_number);
    store.complete_multipart(key, &id, &parts).await?;
    if report {
        println!("{}", mib_per_s(size, started.elapsed()));
    }
    Ok(())
}

async fn populate(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    count: usize,
    size: usize,
    dirs: usize,
) -> Result<()> {
    let results: Vec<Result<()>> = futures::stream::iter(0..count)
        .map(|i| {
            let store = store.clone();
            let key = if dirs > 0 {
                format!("{prefix}d{:03}/f{i:05}", i % dirs)
            } else {
                format!("{prefix}f{i:05}")
            };
            async move {
                store
                    .put(&key, random_bytes(size), &PutOptions::default())
                    .await?;
                Ok(())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Run `work(i)` for `0..count` on `threads` threads; seconds taken.
fn parallel(
    count: usize,
    threads: usize,
    work: impl Fn(usize) -> std::io::Result<()> + Sync,
) -> Result<f64> {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let errors: Vec<std::io::Error> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return None;
                        }
                        if let Err(e) = work(i) {
                            return Some(e);
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect()
    });
    if let Some(e) = errors.into_iter().next() {
        return Err(e.into());
    }
    Ok(started.elapsed().as_secs_f64())
}

fn read_files(dir: &Path, count: usize, threads: usize) -> Result<()> {
    let secs = parallel(count, threads, |i| {
        let mut buf = Vec::new();
        std::fs::File::open(dir.join(format!("f{i:05}")))?.read_to_end(&mut buf)?;
        Ok(())
    })?;
    println!("{secs:.3}");
    Ok(())
}

fn create_files(dir: &Path, count: usize, size: usize, threads: usize) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let bodies: Vec<Bytes> = (0..count).map(|_| random_bytes(size)).collect();
    let secs = parallel(count, threads, |i| {
        let mut f = std::fs::File::create(dir.join(format!("f{i:05}")))?;
        f.write_all(&bodies[i])?;
        // close(2) uploads: it is part of the measured time.
        drop(f);
        Ok(())
    })?;
    println!("{secs:.3}");
    Ok(())
}

fn ttfb(dir: &Path, count: usize) -> Result<()> {
    let mut total = Duration::ZERO;
    for i in 0..count {
        let started = Instant::now();
        let mut f = std::fs::File::open(dir.join(format!("f{i:05}")))?;
        let mut one = [0u8; 1];
        f.read_exact(&mut one)?;
        total += started.elapsed();
    }
    println!("{:.2}", total.as_secs_f64() * 1000.0 / count.max(1) as f64);
    Ok(())
}

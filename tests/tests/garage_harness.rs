//! The Garage harness itself: a private instance comes up with a usable
//! bucket and key, answers HTTP, and leaves nothing behind when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use e2e::Garage;

#[test]
fn private_instance_starts_answers_and_cleans_up() {
    let garage = Garage::start().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("garage startup took {:?}", garage.startup_time());
    assert!(garage.endpoint().starts_with("http://127.0.0.1:"));
    assert!(garage.access_key_id().starts_with("GK"));
    assert_eq!(garage.secret_access_key().len(), 64);
    assert!(!format!("{garage:?}").contains(garage.secret_access_key()));
    let dir = garage.dir().to_path_buf();
    assert!(dir.join("garage.log").is_file());

    // An unsigned request is refused by a live S3 API (403, not a hang).
    let mut s = TcpStream::connect(garage.s3_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /{} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        garage.bucket()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");

    // A second bucket for the same key.
    garage.create_bucket("e2e-harness-second").unwrap();

    let addr = garage.s3_addr();
    drop(garage);
    assert!(!dir.exists(), "the temporary directory is removed on drop");
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
        "the server is stopped on drop"
    );
}

#[test]
fn shared_instance_is_started_once() {
    let a = Garage::shared().unwrap_or_else(|e| panic!("{e}"));
    let b = Garage::shared().unwrap_or_else(|e| panic!("{e}"));
    assert!(std::ptr::eq(a, b));
    assert!(a.dir().join("garage.toml").is_file());
}

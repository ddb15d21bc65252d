//! Compiles the vendored CSI spec (`proto/csi.proto`, package `csi.v1`)
//! into Rust with `protox` (a pure-Rust protobuf compiler: no `protoc` on
//! the build machine) and `tonic-prost-build` (server and client code).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/csi.proto");
    let fds = protox::compile(["csi.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}

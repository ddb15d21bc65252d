//! The `ossfs-rs` binary: everything lives in the library; see [`ossfs_rs::cli`].

fn main() -> std::process::ExitCode {
    ossfs_rs::cli::run()
}

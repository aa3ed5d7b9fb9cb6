//! Puts the web pages and players inside the binary, so `segcast serve`
//! works from any directory (`src/http/pages.rs` serves them; `--player-dir`
//! serves a directory instead, for developing the pages).
//!
//! Embedded: `player/pages/*`, everything under `player/public/`, and hls.js
//! and dash.js from `player/node_modules/` exactly as `player/package-lock.json`
//! pins them (`npm ci --prefix player`, which `scripts/setup` runs). Each
//! file gets an ETag from its bytes, so browsers revalidate cheaply.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Players from npm: (name under `vendor/`, file under `player/`).
const VENDOR: [(&str, &str); 2] = [
    ("hls.min.js", "node_modules/hls.js/dist/hls.min.js"),
    (
        "dash.all.min.js",
        "node_modules/dashjs/dist/modern/umd/dash.all.min.js",
    ),
];

fn main() {
    let player = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("player");
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for dir in ["pages", "public"] {
        println!("cargo:rerun-if-changed=player/{dir}");
        walk(&player.join(dir), dir, &mut files);
    }
    println!("cargo:rerun-if-changed=player/package-lock.json");
    for (name, file) in VENDOR {
        let path = player.join(file);
        println!("cargo:rerun-if-changed=player/{file}");
        if !path.is_file() {
            panic!(
                "{} is missing: the binary embeds the web players from npm. \
                 Run `npm ci --prefix player` (scripts/setup does) and build again.",
                path.display()
            );
        }
        files.push((format!("vendor/{name}"), path));
    }
    files.sort();
    let mut out = String::from(
        "/// Embedded player files: (path under the player, bytes, ETag).\n\
         pub static FILES: &[(&str, &[u8], &str)] = &[\n",
    );
    for (name, path) in &files {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let etag = format!("\"{:016x}\"", fnv1a(&bytes));
        writeln!(
            out,
            "    ({name:?}, include_bytes!({:?}), {etag:?}),",
            path.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&env::var("OUT_DIR").unwrap()).join("embedded_player.rs");
    fs::write(dest, out).unwrap();
}

/// Files below `dir`, named `prefix/relative/path`.
fn walk(dir: &Path, prefix: &str, files: &mut Vec<(String, PathBuf)>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().expect("UTF-8 file names");
        let path = entry.path();
        if path.is_dir() {
            walk(&path, &format!("{prefix}/{name}"), files);
        } else {
            files.push((format!("{prefix}/{name}"), path));
        }
    }
}

/// FNV-1a, 64 bits: enough to tell versions of a file apart for an ETag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

//! Embeds the web UI's built bundle (`make ui` writes it to
//! `target/ui/dist`, or `MODELSWITCH_UI_DIST` names another folder) into
//! the binary, each file with a gzipped copy made here once. Without a
//! bundle the list is empty and `/ui/` says how to build one.

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MODELSWITCH_UI_DIST");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dist = std::env::var_os("MODELSWITCH_UI_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("target/ui/dist"));
    // Watching a folder that does not exist would rerun this script, and
    // rebuild the crate, on every build: make it, empty.
    if !dist.exists() {
        let _ = std::fs::create_dir_all(&dist);
    }
    println!("cargo:rerun-if-changed={}", dist.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let mut files = Vec::new();
    walk(&dist, &mut files);
    files.sort();
    let mut code = String::from("pub static ASSETS: &[Asset] = &[\n");
    for (i, file) in files.iter().enumerate() {
        let Ok(body) = std::fs::read(file) else {
            continue;
        };
        let rel = file
            .strip_prefix(&dist)
            .unwrap_or(file)
            .to_string_lossy()
            .replace('\\', "/");
        let gz = out.join(format!("ui-{i}.gz"));
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zipped = enc.write_all(&body).and_then(|()| enc.finish());
        let gzip = match zipped {
            // Only where it pays: small or already-compressed files stay as they are.
            Ok(z) if z.len() + 64 < body.len() => {
                let _ = std::fs::write(&gz, z);
                format!("Some(include_bytes!({:?}))", gz.display().to_string())
            }
            _ => "None".to_owned(),
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut h);
        let _ = writeln!(
            code,
            "    Asset {{ path: {rel:?}, mime: {:?}, body: include_bytes!({:?}), gzip: {gzip}, etag: \"\\\"{h:016x}\\\"\", etag_gzip: \"\\\"{h:016x}-gz\\\"\" }},",
            mime(&rel),
            file.display().to_string(),
            h = h.finish()
        );
    }
    code.push_str("];\n");
    let _ = std::fs::write(out.join("ui_assets.rs"), code);
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, files);
        } else if p.is_file() {
            files.push(p);
        }
    }
}

fn mime(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" | "map" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

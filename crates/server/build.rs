//! Refuses to build a hubmon without its dashboard: `web/dist` (committed, rebuilt by
//! `npm run build` in `web/`) must hold `index.html` and every asset it references, or the
//! binary would serve a blank page.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Read at run time: `env!` would freeze the path this script was compiled at, which is
    // wrong when a target directory is shared between checkouts.
    let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        eprintln!("error: CARGO_MANIFEST_DIR is not set; build hubmon with cargo");
        return ExitCode::FAILURE;
    };
    let dist = Path::new(&manifest_dir).join("../../web/dist");
    println!("cargo:rerun-if-changed=../../web/dist/index.html");
    let index = match std::fs::read_to_string(dist.join("index.html")) {
        Ok(text) => text,
        Err(error) => {
            eprintln!(
                "error: the dashboard is missing: cannot read {} ({error}).\n\
                 web/dist is committed to the repository; restore it (git checkout of web/dist) or build it:\n\
                 \tcd web && npm ci && npm run build    (needs Node.js 20 or later)",
                dist.join("index.html").display()
            );
            return ExitCode::FAILURE;
        }
    };
    let missing: Vec<&str> = index
        .split(['"', '\''])
        .filter(|piece| piece.starts_with("/assets/"))
        .filter(|asset| !dist.join(asset.trim_start_matches('/')).is_file())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "error: web/dist/index.html references assets that are not there: {}.\n\
             Rebuild the dashboard: cd web && npm ci && npm run build",
            missing.join(", ")
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

//! Links the system libpocketsphinx when the `pocketsphinx` feature is on and
//! pkg-config finds the library; otherwise the crate builds without it and
//! `--engine pocketsphinx` reports that it is unavailable.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_pocketsphinx)");
    println!("cargo::rerun-if-env-changed=PKG_CONFIG_PATH");
    if std::env::var_os("CARGO_FEATURE_POCKETSPHINX").is_none() {
        return;
    }
    match pkg_config::Config::new().probe("pocketsphinx") {
        Ok(_) => {
            println!("cargo::rustc-cfg=has_pocketsphinx");
            let modeldir = pkg_config::get_variable("pocketsphinx", "modeldir")
                .unwrap_or_else(|_| "/usr/share/pocketsphinx/model".into());
            println!("cargo::rustc-env=DEVSERVER_PS_MODELDIR={modeldir}");
        }
        Err(e) => {
            println!("cargo::warning=libpocketsphinx not found ({e}); building without the pocketsphinx engine");
        }
    }
}

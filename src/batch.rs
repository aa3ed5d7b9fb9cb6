//! `segcast import FILE...`: imports files into the library without a
//! server, through the same import task the server runs.
//!
//! Each file is copied into a recording folder under `<data>/staging/` and
//! processed there, its metadata kept in a catalog of the run's own (in
//! memory). A finished one gets its row in the library's catalog, then is
//! renamed into `<data>/recordings/` in one step, which is what a running
//! server watches for (see [`pipeline::Library::adopt_moved_in`]). A failed
//! one is removed: the command's report says why, and the library never
//! lists a half-made recording. A lock file per staged import lets the
//! next run tell a crashed import's leftovers from another run's work; one
//! whose row made it into the library is moved in then.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

use base::ids::is_valid_id;
use media::aes::ContentKey;
use pipeline::ingest::import::{self, import_info, Placement};
use pipeline::ingest::library::new_import_meta;
use pipeline::{RecordingStatus, Shared};
use store::catalog::{Catalog, KeyWrap};
use store::{ImportOrigin, RecordingMeta, State, Store};

use crate::config::Config;

/// Positions of a progress bar: per mille.
const BAR_STEPS: u64 = 1000;
const LOCK_SUFFIX: &str = ".lock";

/// What became of one file.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub file: PathBuf,
    pub outcome: Result<RecordingStatus, String>,
}

/// Imports `files` (at most `config.import_jobs` at once) and reports on
/// each, in the order given. Progress bars go to stderr when it is a
/// terminal.
pub async fn run(config: Config, files: Vec<PathBuf>) -> std::io::Result<Vec<FileReport>> {
    let library = Store::open(&config.data_dir)?;
    let catalog = crate::app::open_catalog(&config).await?;
    let staging = Store::open_root(store::staging::dir(&config.data_dir))?;
    remove_stale(&staging, &library, &catalog).await;
    // The run's own keys never leave it: wrapped under a throwaway secret.
    let throwaway =
        KeyWrap::from_secret(&base::ids::random_bytes::<32>()).map_err(std::io::Error::other)?;
    let staged = Catalog::in_memory(throwaway)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let context = Arc::new(Context {
        jobs: Arc::new(Semaphore::new(config.import_jobs as usize)),
        shared: Shared {
            store: staging,
            catalog: staged,
            settings: Arc::new((&config).into()),
            // The CLI serves no /metrics: counted, never read.
            metrics: base::metrics::Metrics::new(),
            mirror: None,
        },
        config,
        library,
        catalog,
    });
    let bars = MultiProgress::new();
    let imports = files.into_iter().map(|file| {
        let bar = bars.add(new_bar(&file));
        let context = context.clone();
        async move {
            let outcome = import_file(&file, &context, &bar).await;
            match &outcome {
                Ok(s) => bar.finish_with_message(format!("ready, {:.1} s", s.duration_s)),
                Err(e) => bar.abandon_with_message(format!("failed: {e}")),
            }
            FileReport { file, outcome }
        }
    });
    Ok(futures_util::future::join_all(imports).await)
}

fn new_bar(file: &Path) -> ProgressBar {
    let bar = ProgressBar::new(BAR_STEPS);
    bar.set_style(
        ProgressStyle::with_template("{prefix:30!} [{bar:30}] {percent:>3}% {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(display_name(file));
    bar.set_message("queued");
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

fn display_name(file: &Path) -> String {
    file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// What every import of one run shares.
struct Context {
    library: Store,
    /// The library's catalog, where a finished import's row goes.
    catalog: Catalog,
    /// The staging folder, the run's own catalog, settings.
    shared: Shared,
    config: Config,
    jobs: Arc<Semaphore>,
}

async fn import_file(
    file: &Path,
    cx: &Context,
    bar: &ProgressBar,
) -> Result<RecordingStatus, String> {
    let bytes = match std::fs::metadata(file) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return Err("not a file (a folder? give the files in it)".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("no such file".into()),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let info = import_info(&display_name(file), bytes, ImportOrigin::Cli);
    let (mut meta, _token) = new_import_meta(None, info);
    let id = meta.id.clone();
    // The media is encrypted as made; the key reaches the library's
    // catalog (wrapped) with the finished recording's row, never a file.
    meta.encrypt = cx.config.encrypt;
    let key = meta.encrypt.then(ContentKey::generate);
    let lock_path = cx.shared.store.root().join(format!("{id}{LOCK_SUFFIX}"));
    let lock = File::create(&lock_path).map_err(|e| format!("cannot stage it: {e}"))?;
    lock.lock().map_err(|e| format!("cannot stage it: {e}"))?;
    let outcome = process(file, &meta, key, cx, bar).await;
    if outcome.is_err() {
        let _ = cx.shared.store.delete(&id);
    }
    drop(lock);
    let _ = std::fs::remove_file(&lock_path);
    outcome
}

async fn process(
    file: &Path,
    meta: &RecordingMeta,
    key: Option<ContentKey>,
    cx: &Context,
    bar: &ProgressBar,
) -> Result<RecordingStatus, String> {
    bar.set_message("copying");
    let (source, to_stage, store) = (file.to_path_buf(), meta.clone(), cx.shared.store.clone());
    tokio::task::spawn_blocking(move || {
        import::create_files(&store, &to_stage, &source, Placement::Copy)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot copy it into {}: {e}", store_dir(&cx.shared.store)))?;
    let staged = &cx.shared.catalog;
    staged
        .create_recording(meta, key.as_ref())
        .await
        .map_err(|e| e.to_string())?;

    // The task lives as long as its handle (and its command sender).
    let task = import::spawn(meta.clone(), key, &cx.shared, cx.jobs.clone());
    let mut status = task.status.clone();
    bar.set_message("queued");
    let done = loop {
        let current = status.borrow_and_update().clone();
        bar.set_position((current.progress.unwrap_or(0.0) * BAR_STEPS as f64) as u64);
        match current.state {
            State::Ready | State::Failed => break current,
            _ if current.progress.unwrap_or(0.0) > 0.0 => bar.set_message("processing"),
            _ => {}
        }
        if status.changed().await.is_err() {
            return Err("the import task stopped".into());
        }
    };
    if let Some(error) = done.error {
        return Err(error);
    }
    let finished = match staged.recording(&meta.id).await {
        Ok(Some((finished, _))) => finished,
        Ok(None) => return Err("its metadata was lost".into()),
        Err(e) => return Err(e.to_string()),
    };
    cx.catalog
        .create_recording(&finished, key.as_ref())
        .await
        .map_err(|e| format!("cannot add it to the library's catalog: {e}"))?;
    if let Err(e) = cx.library.adopt(&cx.shared.store, &meta.id) {
        let _ = cx.catalog.delete_recording(&meta.id).await;
        return Err(format!("cannot move it into the library: {e}"));
    }
    Ok(done)
}

fn store_dir(store: &Store) -> String {
    store.root().display().to_string()
}

/// Removes staged imports whose lock nobody holds (their run crashed),
/// except one whose row is in the library already (its run crashed
/// between adding the row and moving the folder): that one is moved in.
async fn remove_stale(staging: &Store, library: &Store, catalog: &Catalog) {
    let Ok(entries) = std::fs::read_dir(staging.root()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str().filter(|n| is_valid_id(n)) else {
            continue;
        };
        let lock_path = staging.root().join(format!("{id}{LOCK_SUFFIX}"));
        let stale = File::create(&lock_path).is_ok_and(|lock| lock.try_lock().is_ok());
        if !stale {
            continue;
        }
        if matches!(catalog.recording(id).await, Ok(Some(_))) {
            tracing::info!(%id, "moving in a finished import a crashed run left");
            if let Err(error) = library.adopt(staging, id) {
                tracing::warn!(%id, %error, "cannot move a finished import in");
            }
        } else {
            tracing::info!(%id, "removing a staged import a crashed run left");
            let _ = staging.delete(id);
        }
        let _ = std::fs::remove_file(&lock_path);
    }
}

/// The summary printed after the bars: one row per file.
pub fn summary_table(reports: &[FileReport]) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(["File", "Result", "Id", "Duration", "Segments"]);
    for report in reports {
        let file = report.file.display().to_string();
        match &report.outcome {
            Ok(s) => table.add_row([
                file,
                "ready".into(),
                s.id.clone(),
                format!("{:.2} s", s.duration_s),
                s.segments.to_string(),
            ]),
            Err(e) => table.add_row([
                file,
                format!("failed: {e}"),
                "".into(),
                "".into(),
                "".into(),
            ]),
        };
    }
    table.to_string()
}

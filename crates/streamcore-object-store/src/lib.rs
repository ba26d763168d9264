//! Checkpoints and state hand-over on object stores — Amazon S3 (and S3-compatible servers),
//! Google Cloud Storage, Azure Blob Storage, or a local directory — through the
//! [`object_store`] crate.
//!
//! [`ObjectStoreBlobs`] implements the engine's [`BlobStore`] (the handful of operations
//! checkpoints need) over any [`ObjectStore`]; [`checkpoint_storage`] opens a URL
//! (`s3://bucket/job`, `gs://bucket/job`, `az://container/job`, `file:///var/ckpt/job`) as a
//! [`BlobCheckpointStorage`] to hand to `CheckpointConfig::storage`. How a checkpoint is made
//! atomic without a rename (state files first, the manifest last with a conditional create) is
//! in `streamcore::checkpoint::blob`.
//!
//! - **Credentials** come from the environment, as each cloud's own tools read them
//!   (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, `AWS_REGION`,
//!   `AWS_ENDPOINT` and `AWS_ALLOW_HTTP=true` for an S3-compatible server; `GOOGLE_*`;
//!   `AZURE_*`), or from the instance's metadata service. They are never logged: messages name
//!   only the URL.
//! - **Retries**: every request is retried on connection errors, timeouts, 5xx and throttling
//!   answers, with exponential backoff from 100 ms up to 15 s, at most 10 times and for at
//!   most 3 minutes ([`RETRY`]); an error reaches the job only after that.
//! - **Concurrency**: a checkpoint's state files are uploaded (and, on restore, downloaded)
//!   [`CONCURRENCY`] at a time; files larger than [`MULTIPART_THRESHOLD`] go up as multipart
//!   uploads of [`PART_SIZE`] parts.
//!
//! The engine's threads are not async: each [`ObjectStoreBlobs`] owns a small tokio runtime
//! and blocks on it.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use streamcore::checkpoint::blob::join_key;
use streamcore::checkpoint::{BlobCheckpointStorage, BlobStore};
use streamcore::{Result, StreamError};

/// Requests in flight at once when uploading or downloading a checkpoint's files.
pub const CONCURRENCY: usize = 8;

/// Objects larger than this are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 16 << 20;

/// The part size of multipart uploads (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 << 20;

/// The retry policy of every request (see the crate documentation).
pub const RETRY: RetryPolicy = RetryPolicy {
    max_retries: 10,
    retry_timeout: Duration::from_secs(180),
};

/// How requests are retried: at most `max_retries` times, for at most `retry_timeout` from the
/// first attempt, with exponential backoff (object_store's: 100 ms doubling up to 15 s).
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// Time after which no retry is attempted.
    pub retry_timeout: Duration,
}

impl RetryPolicy {
    fn config(self) -> RetryConfig {
        RetryConfig {
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
            ..RetryConfig::default()
        }
    }
}

/// TLS (https endpoints) goes through rustls with *ring*, which the workspace builds already,
/// instead of object_store's default aws-lc-rs (a C build of minutes): installed as the
/// process's default provider unless the application installed one.
#[expect(
    deprecated,
    reason = "rustls 0.23.48 deprecates the ring provider for lacking post-quantum key exchange; classical TLS 1.3 (X25519) is what S3, GCS and Azure endpoints need"
)]
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Whether `text` names an object store (`s3://`, `s3a://`, `gs://`, `az://`, `azure://`,
/// `abfs://`, `abfss://`, `file://`) rather than a local path.
///
/// ```
/// use streamcore_object_store::is_object_store_url;
/// assert!(is_object_store_url("s3://bucket/job"));
/// assert!(is_object_store_url("file:///tmp/ckpt"));
/// assert!(!is_object_store_url("/tmp/ckpt"));
/// assert!(!is_object_store_url("ckpt"));
/// ```
pub fn is_object_store_url(text: &str) -> bool {
    SCHEMES.iter().any(|s| {
        text.len() > s.len() + 3 && text.starts_with(s) && text[s.len()..].starts_with("://")
    })
}

const SCHEMES: [&str; 8] = ["s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "file"];

/// An [`ObjectStore`] seen as the engine's [`BlobStore`]: keys are relative to a root prefix
/// inside the store (the path of the URL it was opened from).
pub struct ObjectStoreBlobs {
    store: Arc<dyn ObjectStore>,
    root: String,
    url: String,
    runtime: tokio::runtime::Runtime,
    /// Set once a store refused a conditional create as unsupported (logged once).
    no_conditional_put: AtomicBool,
}

impl std::fmt::Debug for ObjectStoreBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreBlobs")
            .field("url", &self.url)
            .finish()
    }
}

fn config_error(url: &str, what: impl std::fmt::Display) -> StreamError {
    StreamError::Config(format!("object store {url}: {what}"))
}

/// The URL without anything that could be a secret (user info, query, fragment).
fn redact(url: &url::Url) -> String {
    let mut clean = url.clone();
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    clean.set_query(None);
    clean.set_fragment(None);
    clean.to_string().trim_end_matches('/').to_string()
}

impl ObjectStoreBlobs {
    /// Opens the store a URL names: `s3://BUCKET/PREFIX` (also `s3a://`), `gs://BUCKET/PREFIX`,
    /// `az://CONTAINER/PREFIX` (also `azure://`, `abfs[s]://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX`),
    /// or `file:///ABSOLUTE/DIR` (created if missing). Credentials and endpoints come from the
    /// environment (see the crate documentation). Nothing is contacted yet: a wrong bucket or
    /// credential shows at the first request.
    pub fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &[], RETRY)
    }

    /// As [`ObjectStoreBlobs::open`], with configuration `options` on top of the environment's
    /// (`object_store`'s keys for the URL's store, e.g. `aws_endpoint`, `aws_allow_http`,
    /// `aws_access_key_id`; an unknown key is an error) and the retry policy `retry`.
    pub fn open_with(url: &str, options: &[(&str, &str)], retry: RetryPolicy) -> Result<Self> {
        // Before any client is built: the clients' TLS takes the process's provider.
        install_tls_provider();
        let parsed = url::Url::parse(url).map_err(|e| config_error(url, e))?;
        let shown = redact(&parsed);
        let unknown = |key: &str| config_error(&shown, format!("unknown option `{key}`"));
        let retry = retry.config();
        let (store, root): (Arc<dyn ObjectStore>, String) = match parsed.scheme() {
            "file" => {
                if let Some((key, _)) = options.first() {
                    return Err(unknown(key));
                }
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| config_error(&shown, "not an absolute local path"))?;
                std::fs::create_dir_all(&dir).map_err(|e| {
                    config_error(&shown, format!("creating {}: {e}", dir.display()))
                })?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| config_error(&shown, e))?;
                (Arc::new(fs), String::new())
            }
            "s3" | "s3a" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| config_error(&shown, "no bucket (s3://BUCKET/PREFIX)"))?;
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry)
                    .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch);
                for (key, value) in options {
                    b = b.with_config(key.parse().map_err(|_| unknown(key))?, *value);
                }
                let s3 = b.build().map_err(|e| config_error(&shown, e))?;
                (Arc::new(s3), parsed.path().to_string())
            }
            "gs" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| config_error(&shown, "no bucket (gs://BUCKET/PREFIX)"))?;
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry);
                for (key, value) in options {
                    b = b.with_config(key.parse().map_err(|_| unknown(key))?, *value);
                }
                let gcs = b.build().map_err(|e| config_error(&shown, e))?;
                (Arc::new(gcs), parsed.path().to_string())
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry);
                for (key, value) in options {
                    b = b.with_config(key.parse().map_err(|_| unknown(key))?, *value);
                }
                let azure = b.build().map_err(|e| config_error(&shown, e))?;
                (Arc::new(azure), parsed.path().to_string())
            }
            other => {
                return Err(config_error(
                    &shown,
                    format!("unknown scheme `{other}` (s3, gs, az, file)"),
                ))
            }
        };
        Self::new(store, root, shown)
    }

    /// Wraps `store`, with keys under `root` (a `/`-separated prefix; `""`: the whole store);
    /// `url` names the root in messages and checkpoint locations.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        root: impl Into<String>,
        url: impl Into<String>,
    ) -> Result<Self> {
        install_tls_provider();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("object-store")
            .enable_all()
            .build()
            .map_err(|e| StreamError::io("starting the object store's runtime", e))?;
        Ok(ObjectStoreBlobs {
            store,
            root: root.into().trim_matches('/').to_string(),
            url: url.into().trim_end_matches('/').to_string(),
            runtime,
            no_conditional_put: AtomicBool::new(false),
        })
    }

    /// The URL of the root.
    pub fn root_url(&self) -> &str {
        &self.url
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(join_key(&self.root, key))
    }

    /// The key of `path` relative to the root.
    fn key_of(&self, path: &ObjectPath) -> String {
        let full: &str = path.as_ref();
        if self.root.is_empty() {
            return full.to_string();
        }
        full.strip_prefix(self.root.as_str())
            .map(|rest| rest.trim_start_matches('/'))
            .unwrap_or(full)
            .to_string()
    }

    fn fail(&self, what: &str, key: &str, e: object_store::Error) -> StreamError {
        StreamError::Checkpoint(format!("{what} {}: {e}", self.url(key)))
    }

    /// Runs `f` on the store's runtime, blocking the calling thread (the engine's task and
    /// coordinator threads are plain threads). A caller on a worker thread of a multi-thread
    /// tokio runtime is moved out of it first (`block_in_place`); one on a current-thread
    /// runtime cannot block and must call from `spawn_blocking`.
    fn block<F: Future>(&self, f: F) -> F::Output {
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::block_in_place(|| self.runtime.block_on(f))
        } else {
            self.runtime.block_on(f)
        }
    }

    async fn put_one(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.path(key);
        if bytes.len() <= MULTIPART_THRESHOLD {
            self.store
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(|e| self.fail("uploading", key, e))?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| self.fail("starting the upload of", key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let bytes = Bytes::from(bytes);
        let mut at = 0;
        while at < bytes.len() {
            if let Err(e) = writer.wait_for_capacity(CONCURRENCY).await {
                let _ = writer.abort().await;
                return Err(self.fail("uploading a part of", key, e));
            }
            let end = (at + PART_SIZE).min(bytes.len());
            writer.put(bytes.slice(at..end));
            at = end;
        }
        writer
            .finish()
            .await
            .map_err(|e| self.fail("completing the upload of", key, e))?;
        Ok(())
    }

    async fn get_one(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.store.get(&self.path(key)).await {
            Ok(r) => {
                let bytes = r
                    .bytes()
                    .await
                    .map_err(|e| self.fail("downloading", key, e))?;
                Ok(Some(bytes.to_vec()))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.fail("downloading", key, e)),
        }
    }
}

impl BlobStore for ObjectStoreBlobs {
    fn url(&self, key: &str) -> String {
        if key.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{}", self.url, key.trim_matches('/'))
        }
    }

    fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.block(self.put_one(key, bytes))
    }

    fn put_all(&self, objects: Vec<(String, Vec<u8>)>) -> Result<()> {
        self.block(async {
            futures::stream::iter(objects)
                .map(|(key, bytes)| async move { self.put_one(&key, bytes).await })
                .buffer_unordered(CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await
                .map(|_| ())
        })
    }

    fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<bool> {
        let path = self.path(key);
        self.block(async {
            if !self.no_conditional_put.load(Ordering::Relaxed) {
                let opts = PutOptions::from(PutMode::Create);
                match self
                    .store
                    .put_opts(&path, PutPayload::from(bytes.clone()), opts)
                    .await
                {
                    Ok(_) => return Ok(true),
                    Err(
                        object_store::Error::AlreadyExists { .. }
                        | object_store::Error::Precondition { .. },
                    ) => return Ok(false),
                    Err(object_store::Error::NotImplemented { .. }) => {
                        tracing::warn!(
                            url = %self.url,
                            "the object store has no conditional create: checkpoint manifests are written after a check for an existing one (not atomic against a second writer)"
                        );
                        self.no_conditional_put.store(true, Ordering::Relaxed);
                    }
                    Err(e) => return Err(self.fail("creating", key, e)),
                }
            }
            match self.store.head(&path).await {
                Ok(_) => Ok(false),
                Err(object_store::Error::NotFound { .. }) => {
                    self.put_one(key, bytes).await?;
                    Ok(true)
                }
                Err(e) => Err(self.fail("checking", key, e)),
            }
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.block(self.get_one(key))
    }

    fn get_all(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        self.block(async {
            futures::stream::iter(keys)
                .map(|key| self.get_one(key))
                .buffered(CONCURRENCY)
                .try_collect()
                .await
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let path = self.path(prefix);
        let at = (!path.as_ref().is_empty()).then_some(&path);
        self.block(async {
            self.store
                .list(at)
                .map_ok(|meta| self.key_of(&meta.location))
                .try_collect()
                .await
                .map_err(|e| self.fail("listing", prefix, e))
        })
    }

    fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let path = self.path(prefix);
        let at = (!path.as_ref().is_empty()).then_some(&path);
        let listed = self
            .block(self.store.list_with_delimiter(at))
            .map_err(|e| self.fail("listing", prefix, e))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    fn delete_all(&self, keys: Vec<String>) -> Result<()> {
        let paths: Vec<object_store::Result<ObjectPath>> =
            keys.iter().map(|k| Ok(self.path(k))).collect();
        self.block(async {
            let mut results = self
                .store
                .delete_stream(futures::stream::iter(paths).boxed());
            while let Some(r) = results.next().await {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.fail("deleting under", "", e)),
                }
            }
            Ok(())
        })
    }
}

/// The checkpoint storage at `url` (see [`ObjectStoreBlobs::open`]): checkpoints go to
/// `URL/chk-NNNNNN/…`, savepoints to `URL/sp-NNNNNN/…`.
///
/// ```
/// use streamcore::checkpoint::CheckpointStorage;
/// let dir = tempfile::tempdir().unwrap();
/// let url = format!("file://{}/job", dir.path().display());
/// let storage = streamcore_object_store::checkpoint_storage(&url).unwrap();
/// assert_eq!(storage.next_id().unwrap(), 1);
/// assert_eq!(storage.describe(), url);
/// ```
pub fn checkpoint_storage(url: &str) -> Result<BlobCheckpointStorage> {
    let blobs = ObjectStoreBlobs::open(url)?;
    Ok(BlobCheckpointStorage::new(Arc::new(blobs), ""))
}

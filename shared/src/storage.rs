//! Where uploaded and generated files live (`STORAGE_URL`): a local directory (`file:///path`, the default
//! `file://./data/files`) or S3 (`s3://bucket/prefix`, credentials from the usual `AWS_*` variables). One
//! interface over both, from `object_store`: files are written as streams in parts, and readers that need a
//! local file (calamine seeks) get the file itself when it is local or a downloaded temporary copy.

use crate::error::DomainError;
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    /// The directory of a `file://` store: its files are read in place.
    local: Option<Arc<object_store::local::LocalFileSystem>>,
}

/// A part is sent once this much is buffered (S3's minimum part size is 5 MiB).
const PART_BYTES: usize = 8 * 1024 * 1024;

impl Storage {
    pub fn from_url(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("file://") {
            let directory = PathBuf::from(if path.is_empty() { "." } else { path });
            std::fs::create_dir_all(&directory)
                .map_err(|error| format!("cannot create the storage directory {}: {error}", directory.display()))?;
            let directory = directory
                .canonicalize()
                .map_err(|error| format!("cannot open the storage directory {}: {error}", directory.display()))?;
            let local = Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(&directory)
                    .map_err(|error| error.to_string())?
                    .with_automatic_cleanup(true),
            );
            return Ok(Self { store: local.clone(), prefix: StorePath::default(), local: Some(local) });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("s3:// needs a bucket: s3://bucket/prefix".into());
            }
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|error| error.to_string())?;
            return Ok(Self { store: Arc::new(store), prefix: StorePath::from(prefix), local: None });
        }
        Err("must be file:///path or s3://bucket/prefix".into())
    }

    fn location(&self, key: &str) -> StorePath {
        let mut location = self.prefix.clone();
        for part in key.split('/') {
            location = location.join(part);
        }
        location
    }

    /// Starts writing a file; nothing is visible under `key` until `finish`.
    pub async fn writer(&self, key: &str) -> Result<FileWriter, DomainError> {
        let upload = self.store.put_multipart(&self.location(key)).await.map_err(storage_error)?;
        Ok(FileWriter { inner: WriteMultipart::new_with_chunk_size(upload, PART_BYTES), written: 0 })
    }

    pub async fn delete(&self, key: &str) -> Result<(), DomainError> {
        match self.store.delete(&self.location(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(storage_error(error)),
        }
    }

    /// The file's size and its bytes as a stream (downloads).
    pub async fn read_stream(
        &self,
        key: &str,
    ) -> Result<(u64, futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>), DomainError> {
        let result = self.store.get(&self.location(key)).await.map_err(storage_error)?;
        let size = result.meta.size;
        let stream = result.into_stream().map(|chunk| chunk.map_err(std::io::Error::other)).boxed();
        Ok((size, stream))
    }

    /// Stores a finished local file under `key`, in parts; nothing is visible under `key` until it is whole.
    pub async fn store_file(&self, key: &str, path: &std::path::Path) -> Result<u64, DomainError> {
        use tokio::io::AsyncReadExt;
        let mut file = tokio::fs::File::open(path).await.map_err(|error| DomainError::Internal(error.into()))?;
        let mut writer = self.writer(key).await?;
        let mut buffer = vec![0u8; 1024 * 1024];
        loop {
            let read = match file.read(&mut buffer).await {
                Ok(read) => read,
                Err(error) => {
                    writer.abort().await;
                    return Err(DomainError::Internal(error.into()));
                }
            };
            if read == 0 {
                break;
            }
            if let Err(error) = writer.write(Bytes::copy_from_slice(&buffer[..read])).await {
                writer.abort().await;
                return Err(error);
            }
        }
        writer.finish().await
    }

    /// A local path to read the file from: the file itself in a local store, else a temporary download that is
    /// removed when the returned value is dropped.
    pub async fn local_copy(&self, key: &str) -> Result<LocalFile, DomainError> {
        let location = self.location(key);
        if let Some(local) = &self.local {
            let path = local.path_to_filesystem(&location).map_err(storage_error)?;
            if !path.exists() {
                return Err(DomainError::NotFound("stored file"));
            }
            return Ok(LocalFile { path, temporary: false });
        }
        let path = std::env::temp_dir().join(format!("crm-download-{}", uuid::Uuid::new_v4()));
        let mut file = tokio::fs::File::create(&path).await.map_err(|error| DomainError::Internal(error.into()))?;
        let downloaded = async {
            let mut stream = self.store.get(&location).await.map_err(storage_error)?.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(storage_error)?;
                tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                    .await
                    .map_err(|error| DomainError::Internal(error.into()))?;
            }
            Ok::<_, DomainError>(())
        }
        .await;
        let local = LocalFile { path, temporary: true };
        downloaded.map(|()| local)
    }
}

fn storage_error(error: object_store::Error) -> DomainError {
    match error {
        object_store::Error::NotFound { .. } => DomainError::NotFound("stored file"),
        other => DomainError::Unavailable("file storage", other.into()),
    }
}

/// A file being written in parts.
pub struct FileWriter {
    inner: WriteMultipart,
    written: u64,
}

impl FileWriter {
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), DomainError> {
        // At most two parts in flight: memory stays bounded however fast the client sends.
        self.inner.wait_for_capacity(2).await.map_err(storage_error)?;
        self.inner.write(&chunk);
        self.written += chunk.len() as u64;
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub async fn finish(self) -> Result<u64, DomainError> {
        let written = self.written;
        self.inner.finish().await.map_err(storage_error)?;
        Ok(written)
    }

    pub async fn abort(self) {
        if let Err(error) = self.inner.abort().await {
            tracing::warn!(error = %error, "an abandoned upload could not be cleaned up");
        }
    }
}

pub struct LocalFile {
    pub path: PathBuf,
    temporary: bool,
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

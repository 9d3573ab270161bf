//! Object-storage access that more than one stage needs: a lake root or report root and its
//! object store ([`Destination`]: streamed uploads with retries, multipart journaling,
//! conditional puts, listing), and the options that say where a store is and how to sign in
//! ([`StorageOptions`]). `inventory` reads reports and lists buckets through it, `sink`
//! uploads objects, `delivery` keeps run manifests and owner markers. It knows nothing of
//! Parquet, partitions or tables.

pub mod destination;
pub mod storage;

pub use self::destination::Destination;
pub use self::storage::StorageOptions;

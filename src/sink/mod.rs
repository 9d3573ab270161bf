//! The `sink` stage: where delivered rows become objects in the lake.
//!
//! It owns prefix templates ([`PrefixTemplate`], the checked form of a task's `prefix`), the
//! mapping of row times to partitions in a time zone ([`Partitioner`]), and the writers that
//! encode objects and upload them into a lake root ([`crate::objstore::Destination`]):
//! [`PartitionedWriter`] for Parquet, [`NdjsonWriter`] for dirty rows. Every object is
//! spooled to a local file and uploaded only when complete, so readers never see a partial
//! object and memory stays bounded.
//!
//! It does not read the store, plan runs, convert types or decide which time a row is
//! partitioned by: delivery does that and hands the sink lake-typed batches and UTC instants.
//! Nothing here calls back into earlier stages.

pub mod ndjson;
pub mod parquet;
pub mod partition;
pub mod spool;
pub mod template;

pub use self::ndjson::NdjsonWriter;
pub use self::parquet::{parse_compression, ObjectNaming, ParquetOptions, PartitionedWriter};
pub use self::partition::Partitioner;
pub use self::template::{Granularity, PrefixTemplate};

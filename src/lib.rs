//! lakeport keeps tables of object-storage metadata in a metadata store and delivers them to a
//! data lake as Parquet under time-variable prefixes, with the Hive DDL that makes the lake
//! queryable.
//!
//! The modules follow the flow, one job each, data moving one way:
//! [`inventory`] (rows in) → [`store`] (rows with change sequence) → [`delivery`] (tasks, plans,
//! runs) → [`convert`] (store types → lake types, dirty rows) → [`sink`] (partition prefixes,
//! Parquet, object storage) → [`catalog`] (DDL). [`service`] runs tasks on their schedules
//! behind an HTTP API; [`cli`] only drives them. [`pipelines`] loads the pipelines folder that
//! declares tasks and watchers, checked with the pieces every kind of file shares ([`config`]).

#![warn(missing_docs, unreachable_pub)]
#![deny(rust_2018_idioms)]

pub mod catalog;
pub mod cli;
pub mod config;
pub mod convert;
pub mod delivery;
pub mod error;
pub mod inventory;
pub mod model;
pub mod objstore;
pub mod pipelines;
pub mod process;
pub mod service;
pub mod sink;
pub mod store;

pub use error::{Error, Result};

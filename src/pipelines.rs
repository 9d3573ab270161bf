//! Loading the pipelines folder: every delivery task and inventory watcher it declares,
//! checked by their own checkers ([`crate::delivery::config`], [`crate::inventory::watch`])
//! with the pieces they share ([`crate::config`]); strictly for `validate` and `serve`
//! ([`load_project`], [`load_pipelines`]: every problem of every file at once), or one task
//! for the commands that work on one ([`load_task`]: other files' problems are warnings).

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::Value as Yaml;

use crate::config::{project_dir, read_pipeline_files, Kind, PipelineFile};
use crate::delivery::config::check_tasks;
use crate::delivery::Task;
use crate::error::{Error, Result};
use crate::inventory::watch::{check_watchers, WatchDef};
use crate::model::schema::read_tables;
use crate::model::TableDef;

/// Everything the pipelines folder declares.
#[derive(Debug, Clone, Default)]
pub struct Pipelines {
    /// Delivery tasks by name.
    pub tasks: BTreeMap<String, Task>,
    /// Inventory watchers by name.
    pub watchers: BTreeMap<String, WatchDef>,
}

/// Reads and checks every file of `pipelines`: tasks against the declared `tables`, watchers,
/// and that no task and watcher share a name. Returns every problem of every file at once.
pub fn load_pipelines(pipelines: &Path, tables: &BTreeMap<String, TableDef>) -> Result<Pipelines> {
    let (files, mut problems) = read_pipeline_files(pipelines)?;
    let project = project_dir(pipelines);
    let tasks = check_tasks(&files, &project, tables, &mut problems);
    let watchers = check_watchers(&files, &project, &mut problems);
    for (name, watcher) in &watchers {
        if let Some(task) = tasks.get(name) {
            problems.push(format!(
                "{}: name: {name:?} is already used by task file {}",
                watcher.file.display(),
                task.file.display()
            ));
        }
    }
    if problems.is_empty() {
        Ok(Pipelines { tasks, watchers })
    } else {
        Err(Error::InvalidConfig(problems.join("\n")))
    }
}

/// Every table declaration of `schemas` and everything the pipelines folder declares,
/// checked together: every problem of every file at once (for `validate` and `serve`).
pub fn load_project(
    pipelines: &Path,
    schemas: &Path,
) -> Result<(BTreeMap<String, TableDef>, Pipelines)> {
    let (tables, mut problems) = read_tables(schemas)?;
    let declared = match load_pipelines(pipelines, &tables) {
        Ok(declared) => Some(declared),
        Err(Error::InvalidConfig(text)) => {
            problems.extend(text.lines().map(str::to_string));
            None
        }
        Err(e) => return Err(e),
    };
    match declared {
        Some(declared) if problems.is_empty() => Ok((tables, declared)),
        _ => Err(Error::InvalidConfig(problems.join("\n"))),
    }
}

/// One task, for the commands that work on one (`run`, `ddl`, `status <task>`, `claim`): it
/// needs only its own file, the tables it reads and its delivery schema. Problems of the
/// other files of the folder (and of table declarations, `table_problems`, when the task's
/// own table is fine) are returned as warnings, each `FILE: KEY: message`, for the caller to
/// show. Problems of the task's own file are an [`Error::InvalidConfig`]; a name no readable
/// file declares is an [`Error::NotFound`] that lists the task names there are and the files
/// that could not be read (one of them may be the task's). `validate` and `serve` stay strict
/// ([`load_pipelines`]).
pub fn load_task(
    pipelines: &Path,
    tables: &BTreeMap<String, TableDef>,
    table_problems: &[String],
    name: &str,
) -> Result<(Task, Vec<String>)> {
    let (files, unreadable) = read_pipeline_files(pipelines)?;
    let project = project_dir(pipelines);
    let declares = |f: &PipelineFile| {
        f.kind == Kind::Delivery && f.map.get("name").and_then(Yaml::as_str) == Some(name)
    };
    let (own, others): (Vec<PipelineFile>, Vec<PipelineFile>) =
        files.into_iter().partition(|f| declares(f));
    if own.is_empty() {
        let names: Vec<&str> = others
            .iter()
            .filter(|f| f.kind == Kind::Delivery)
            .filter_map(|f| f.map.get("name").and_then(Yaml::as_str))
            .collect();
        let mut message = format!(
            "no task named {name:?} in {} (tasks: {})",
            pipelines.display(),
            names.join(", ")
        );
        if !unreadable.is_empty() {
            message.push_str("; these files could not be read, and one may declare it:\n");
            message.push_str(&unreadable.join("\n"));
        }
        return Err(Error::NotFound(message));
    }
    let mut problems = Vec::new();
    let mut tasks = check_tasks(&own, &project, tables, &mut problems);
    let task = tasks.remove(name);
    match task {
        Some(task) if problems.is_empty() => {
            let mut warnings = unreadable;
            check_tasks(&others, &project, tables, &mut warnings);
            check_watchers(&others, &project, &mut warnings);
            warnings.extend(table_problems.iter().cloned());
            Ok((task, warnings))
        }
        _ => {
            problems.extend(table_problems.iter().cloned());
            Err(Error::InvalidConfig(problems.join("\n")))
        }
    }
}

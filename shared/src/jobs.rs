//! Job vocabulary shared by the API (which records and enqueues jobs) and the worker (which runs them). The
//! values match the `jobs` table's CHECK constraints and contract §5.

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Import,
    Export,
    Report,
    Email,
    Rollup,
}

/// A job's life: `queued` → `running` → one of the final states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Dead,
}

/// The Redis queues, one per family of job kinds, so a slow export never delays an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Queue {
    Imports,
    Exports,
    Reports,
    Emails,
}

impl Queue {
    pub const ALL: [Queue; 4] = [Queue::Imports, Queue::Exports, Queue::Reports, Queue::Emails];

    pub fn name(self) -> &'static str {
        match self {
            Queue::Imports => "imports",
            Queue::Exports => "exports",
            Queue::Reports => "reports",
            Queue::Emails => "emails",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|queue| queue.name() == name.trim())
    }

    /// Where a kind of job runs. Rollups refresh report figures, so they share the reports queue.
    pub fn for_kind(kind: JobKind) -> Self {
        match kind {
            JobKind::Import => Queue::Imports,
            JobKind::Export => Queue::Exports,
            JobKind::Report | JobKind::Rollup => Queue::Reports,
            JobKind::Email => Queue::Emails,
        }
    }
}

/// Parses a `--queues imports,exports` list; an unknown name is an error naming it.
pub fn parse_queue_list(text: &str) -> Result<Vec<Queue>, String> {
    let mut queues = Vec::new();
    for name in text.split(',').filter(|name| !name.trim().is_empty()) {
        let queue = Queue::parse(name).ok_or_else(|| {
            format!("unknown queue {:?}; the queues are imports, exports, reports, emails", name.trim())
        })?;
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    if queues.is_empty() {
        return Err("at least one queue is required".into());
    }
    Ok(queues)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_lists_parse_and_reject_unknown_names() {
        assert_eq!(parse_queue_list("imports, emails,imports"), Ok(vec![Queue::Imports, Queue::Emails]));
        assert!(parse_queue_list("imports,printing").expect_err("unknown queue").contains("\"printing\""));
        assert!(parse_queue_list(" , ").is_err());
    }

    #[test]
    fn every_kind_has_a_queue() {
        assert_eq!(Queue::for_kind(JobKind::Rollup), Queue::Reports);
        assert_eq!(Queue::for_kind(JobKind::Import), Queue::Imports);
    }
}

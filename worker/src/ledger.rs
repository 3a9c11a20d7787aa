//! Group commit for the job ledger. Every job costs a claim and an end in Postgres. Written one by one,
//! those two commits cap a worker at about 2,000 no-op jobs a second on a small machine. Here the claims,
//! and the successful ends, of concurrently running jobs go to Postgres together: a batch is whatever
//! arrived while the previous statement was in flight, so nothing waits when the worker is quiet.

use crm_shared::DomainError;
use crm_shared::db::jobs::{self, JobLease, JobRow, Outcome};
use crm_shared::jobs::JobStatus;
use serde_json::Value;
use sqlx::PgPool;
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Most requests written by one statement.
const MAX_BATCH: usize = 256;

type ClaimReply = oneshot::Sender<Result<Option<JobRow>, String>>;
type SuccessReply = oneshot::Sender<Result<bool, String>>;

#[derive(Clone)]
pub struct Ledger {
    pool: PgPool,
    claims: mpsc::Sender<(Uuid, ClaimReply)>,
    successes: mpsc::Sender<((Uuid, i32), Option<Value>, SuccessReply)>,
}

impl Ledger {
    /// Starts the two batching loops; they end when every `Ledger` clone is dropped.
    pub fn start(pool: PgPool, worker: String) -> Self {
        let (claims, claim_requests) = mpsc::channel(1024);
        let (successes, success_requests) = mpsc::channel(1024);
        tokio::spawn(claim_loop(pool.clone(), worker.clone(), claim_requests));
        tokio::spawn(success_loop(pool.clone(), worker.clone(), success_requests));
        Self { pool, claims, successes }
    }

    /// Claims a job (see `jobs::claim_many`); `None` when it is not claimable.
    pub async fn claim(&self, job_id: Uuid) -> Result<Option<JobRow>, DomainError> {
        let (reply, answer) = oneshot::channel();
        self.claims.send((job_id, reply)).await.map_err(|_| anyhow::anyhow!("the claim batcher stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the claim batcher stopped"))?
            .map_err(|error| anyhow::anyhow!(error).into())
    }

    /// Records how a run ended, under its lease. Successes are batched; the rare other outcomes are written at
    /// once.
    pub async fn finish(&self, lease: &JobLease, outcome: Outcome) -> Result<Option<JobStatus>, DomainError> {
        match outcome {
            Outcome::Succeeded(result) => {
                let (reply, answer) = oneshot::channel();
                self.successes
                    .send(((lease.job_id, lease.attempt), result, reply))
                    .await
                    .map_err(|_| anyhow::anyhow!("the batcher stopped"))?;
                let ended = answer
                    .await
                    .map_err(|_| anyhow::anyhow!("the batcher stopped"))?
                    .map_err(|error| DomainError::from(anyhow::anyhow!(error)))?;
                Ok(ended.then_some(JobStatus::Succeeded))
            }
            other => jobs::finish(&self.pool, lease, &other).await,
        }
    }
}

/// Waits for one request, then takes whatever else is already waiting, up to `MAX_BATCH`.
async fn next_batch<T>(requests: &mut mpsc::Receiver<T>) -> Option<Vec<T>> {
    let first = requests.recv().await?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match requests.try_recv() {
            Ok(request) => batch.push(request),
            Err(_) => break,
        }
    }
    Some(batch)
}

async fn claim_loop(pool: PgPool, worker: String, mut requests: mpsc::Receiver<(Uuid, ClaimReply)>) {
    while let Some(batch) = next_batch(&mut requests).await {
        let ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        match jobs::claim_many(&pool, &ids, &worker).await {
            Ok(rows) => {
                let mut claimed: HashMap<Uuid, JobRow> = rows.into_iter().map(|row| (row.id, row)).collect();
                for (id, reply) in batch {
                    let _ = reply.send(Ok(claimed.remove(&id)));
                }
            }
            Err(error) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
        }
    }
}

async fn success_loop(
    pool: PgPool,
    worker: String,
    mut requests: mpsc::Receiver<((Uuid, i32), Option<Value>, SuccessReply)>,
) {
    while let Some(batch) = next_batch(&mut requests).await {
        let leases: Vec<(Uuid, i32)> = batch.iter().map(|(lease, _, _)| *lease).collect();
        let results: Vec<Option<Value>> = batch.iter().map(|(_, result, _)| result.clone()).collect();
        match jobs::finish_succeeded_many(&pool, &leases, &results, &worker).await {
            Ok(ended) => {
                for ((id, _), _, reply) in batch {
                    let _ = reply.send(Ok(ended.contains(&id)));
                }
            }
            Err(error) => {
                for (_, _, reply) in batch {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
        }
    }
}

//! `evault.v1.LogService`: log info, checkpoints, inclusion and consistency
//! proofs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_store::StoredCheckpoint;
use tonic::{Request, Response, Status};

use super::{caller, evidence_msg, pb, vault_status};
use crate::AppState;
use crate::params::format_ms;

pub(crate) struct Service(pub AppState);

fn checkpoint_msg(c: StoredCheckpoint) -> pb::Checkpoint {
    pb::Checkpoint {
        size: c.size,
        note: c.note,
        created_at: format_ms(c.created_at_ms),
    }
}

/// A tree size field where 0 means "the latest checkpoint".
fn size_field(n: u64) -> Option<u64> {
    (n != 0).then_some(n)
}

#[tonic::async_trait]
impl pb::log_service_server::LogService for Service {
    async fn get_log_info(
        &self,
        _: Request<pb::GetLogInfoRequest>,
    ) -> Result<Response<pb::LogInfo>, Status> {
        let i = self.0.vault.evidence_log().info();
        Ok(Response::new(pb::LogInfo {
            origin: i.origin,
            verifier_key: i.verifier_key,
            verifier_keys: i.verifier_keys,
            tree_size: i.tree_size,
            checkpoint_size: i.checkpoint_size,
        }))
    }

    async fn get_latest_checkpoint(
        &self,
        _: Request<pb::GetLatestCheckpointRequest>,
    ) -> Result<Response<pb::Checkpoint>, Status> {
        let c = self
            .0
            .vault
            .evidence_log()
            .latest_checkpoint()
            .await
            .map_err(vault_status)?;
        Ok(Response::new(checkpoint_msg(c)))
    }

    async fn get_checkpoint(
        &self,
        req: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::Checkpoint>, Status> {
        let size = req.into_inner().size;
        let c = self
            .0
            .vault
            .evidence_log()
            .checkpoint_at(size)
            .await
            .map_err(vault_status)?;
        Ok(Response::new(checkpoint_msg(c)))
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        let caller = caller(&req)?;
        let q = req.into_inner();
        let bundle = self
            .0
            .vault
            .evidence_log()
            .inclusion(&caller.reader(), &q.id, size_field(q.tree_size))
            .await
            .map_err(vault_status)?
            .into_evidence()
            .ok_or_else(|| {
                Status::internal("the evidence log answered with another log's proof")
            })?;
        let bundle_json = serde_json::to_string(&bundle)
            .map_err(|e| Status::internal(format!("encoding the proof bundle: {e}")))?;
        let hashes = bundle
            .inclusion_proof
            .iter()
            .map(|h| STANDARD.decode(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::internal(format!("a stored proof hash is not base64: {e}")))?;
        Ok(Response::new(pb::InclusionProof {
            leaf_index: bundle.leaf_index,
            tree_size: bundle.tree_size,
            hashes,
            checkpoint: bundle.checkpoint,
            record: Some(evidence_msg(bundle.record)),
            bundle_json,
        }))
    }

    async fn get_consistency_proof(
        &self,
        req: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let q = req.into_inner();
        let log = self.0.vault.evidence_log();
        let to = size_field(q.to_size).unwrap_or_else(|| log.checkpoint_size());
        let p = log
            .consistency(q.from_size, to)
            .await
            .map_err(vault_status)?;
        Ok(Response::new(pb::ConsistencyProof {
            from_size: p.from,
            to_size: p.to,
            hashes: p.proof.iter().map(|h| h.to_vec()).collect(),
        }))
    }
}

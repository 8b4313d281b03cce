//! Authentication for evault: who is calling, established from a bearer
//! token of one of two kinds.
//!
//! - Service accounts: HS256 JWS signed with a secret from the keystore
//!   file ([`Keystore`]), minted by `evault token mint`
//!   ([`mint_service_token`]). The file is watched, so revoking a key takes
//!   effect within one poll interval.
//! - OIDC: RS256/ES256/EdDSA tokens from configured issuers, checked
//!   against their JWKS ([`OidcVerifier`]).
//!
//! [`Authenticator`] picks the verifier from the token's `alg`. Every
//! failure is an [`AuthFailure`] (401, or 503 when an issuer's keys are
//! unreachable). [`RateLimiter`] throttles per authenticated principal.
//!
//! This crate knows nothing of HTTP or gRPC: it takes the `Authorization`
//! header's bytes and returns an [`Identity`] or an [`AuthFailure`], whose
//! status, code and `WWW-Authenticate` value the server turns into a reply.
//! What each role may do is the server's permission table, not this crate.

#![warn(missing_docs)]

mod authenticator;
mod bearer;
mod claims;
mod failure;
mod jws;
mod keystore;
mod oidc;
mod ratelimit;
mod rfc3339;
mod roles;
mod service_token;

pub use authenticator::Authenticator;
pub use bearer::bearer_token;
pub use claims::TokenPolicy;
pub use failure::{AuthFailure, TokenPart};
pub use jws::MAX_TOKEN_LEN;
pub use keystore::{
    KeySource, KeySourceError, Keys, KeysVersion, Keystore, KeystoreFile, MIN_SECRET_LEN, Secret,
    ServiceAccountKey, generate_key_id, generate_secret,
};
pub use oidc::{Alg, JwksSource, OidcIssuer, OidcVerifier};
pub use ratelimit::{MAX_BUCKETS, RateLimiter, retry_after_secs};
pub use rfc3339::{parse_rfc3339_ms, parse_time};
pub use roles::{AuthMethod, Identity, Role};
pub use service_token::{mint_service_token, verify_service_token};

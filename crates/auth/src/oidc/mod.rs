//! Tokens from external OpenID Connect issuers, verified against each
//! issuer's JWKS (RFC 7517) with ring: RS256, ES256 and EdDSA (Ed25519).
//!
//! Keys are fetched lazily on first use and cached by `kid`. An unknown
//! `kid` triggers a refresh (the issuer may have rotated), at most once per
//! `min_refresh_interval` per issuer so that garbage `kid`s cannot make the
//! vault hammer the identity provider. When the JWKS cannot be fetched and
//! nothing is cached the vault fails closed with a 503.

mod cache;
mod config;
mod jwk;
mod verifier;

pub use config::{Alg, JwksSource, OidcIssuer};
pub use verifier::OidcVerifier;

#[cfg(test)]
pub(crate) mod tests;

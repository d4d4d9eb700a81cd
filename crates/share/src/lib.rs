//! The encrypted session bundle a clinician shares for remote review, and the reviewer's reply.
//!
//! A share leaves the tablet as one opaque byte string for a relay to store: the session
//! [`Bundle`] (de-identified images, the diagnoses with their model's name, version and hash,
//! probabilities, thresholds and heat maps, and the clinician's note) in a versioned layout,
//! sealed in an envelope of AES-256-GCM chunks (the STREAM construction of age and Tink) under a key
//! derived with HKDF-SHA256 from a random 256-bit [`Secret`]. The secret travels only in the link's
//! fragment (`#k=…`, [`Secret::to_fragment`]), which browsers never send to a server, so the relay
//! holds ciphertext and the [`Capability`] digest and nothing it could read. The reviewer's
//! [`Reply`] is sealed with the same secret under a key of its own.
//!
//! The byte layouts, key derivation and threat model are in `FORMAT.md` beside this crate. The
//! cryptography is RustCrypto's (`aes-gcm`, `hkdf`, `sha2`), none of our own. The same code runs
//! natively and in WebAssembly; it reads no clock (times are the caller's text) and draws random
//! numbers only for the secret and each envelope's salt.
//!
//! It is not de-identification (that is `bedside_imaging::deid`, which runs before a bundle is
//! made), not a relay client and not the relay.
//!
//! Hostile bytes get an [`Error`], never a panic: every length is checked against the bytes there
//! and against a bound before anything is allocated, and a wrong key or any changed, reordered,
//! missing or added ciphertext reads "cannot decrypt this share".
//!
//! ```
//! use bedside_share::{Bundle, Image, Opinion, Reply, Secret, open_bundle, open_reply, seal_bundle, seal_reply};
//!
//! let bundle = Bundle {
//!     created: "2026-12-04T16:45:00Z".into(),
//!     images: vec![Image { media_type: "image/png".into(), name: "image-1.png".into(), bytes: vec![1, 2, 3] }],
//!     diagnoses: vec![],
//!     note: "Lesion on the left forearm, growing for two months.".into(),
//! };
//! // The clinician's tab: a secret for this share, the sealed bundle for the relay, the link.
//! let secret = Secret::generate()?;
//! let sealed = seal_bundle(&secret, &bundle)?;
//! let link = format!("https://bedside.example/view{}", secret.to_fragment());
//!
//! // The reviewer's tab: the secret from the fragment opens the bundle; the reply goes back sealed.
//! let secret = Secret::from_fragment(link.split_once('#').unwrap().1)?;
//! assert_eq!(open_bundle(&secret, &sealed)?, bundle);
//! let reply = Reply { text: "Agree; please biopsy.".into(), opinion: Opinion::Agree, created: "2026-12-05T09:00:00Z".into() };
//! let sealed_reply = seal_reply(&secret, &reply)?;
//!
//! // The clinician's tab again.
//! assert_eq!(open_reply(&secret, &sealed_reply)?, reply);
//! # Ok::<(), bedside_share::Error>(())
//! ```

mod bundle;
pub mod envelope;
mod error;
mod keys;
mod manifest;
mod reply;

pub use bundle::{
    BUNDLE_MAGIC, BUNDLE_VERSION, Bundle, Diagnosis, HeatMap, Image, MAX_MANIFEST_LEN, MAX_PARTS_LEN, Model,
};
pub use error::{Error, Format, FragmentError};
pub use keys::{
    Capability, INFO_BUNDLE, INFO_CAPABILITY, INFO_REPLY, SALT_LEN, SECRET_LEN, Secret, capability_digest,
};
pub use manifest::{MAX_GRID_CELLS, MAX_PARTS, UNCERTAIN};
pub use reply::{MAX_REPLY_LEN, Opinion, REPLY_VERSION, Reply, open_reply, seal_reply};

use envelope::{DEFAULT_CHUNK_SIZE, Kind};

/// Seals a bundle for the relay with the share's secret, in chunks of
/// [`envelope::DEFAULT_CHUNK_SIZE`] bytes.
pub fn seal_bundle(secret: &Secret, bundle: &Bundle) -> Result<Vec<u8>, Error> {
    envelope::seal(secret, Kind::Bundle, &bundle.to_bytes()?, DEFAULT_CHUNK_SIZE)
}

/// Opens a bundle fetched from the relay: decrypts and authenticates every chunk, then reads the
/// bundle and checks it.
pub fn open_bundle(secret: &Secret, sealed: &[u8]) -> Result<Bundle, Error> {
    Bundle::from_bytes(&envelope::open(secret, Kind::Bundle, sealed)?)
}

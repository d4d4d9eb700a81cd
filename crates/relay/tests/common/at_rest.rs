//! What "nothing readable at rest" searches for: a real session bundle sealed as the page seals
//! it, with plaintext markers that must never reach the relay's storage, and the bytes that must.

use bedside_share::envelope::HEADER_LEN;
use bedside_share::{
    Bundle, Diagnosis, HeatMap, Image, Model, Opinion, Reply, Secret, seal_bundle, seal_reply,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// The patient's name as DICOM writes it.
pub const PATIENT: &str = "DOE^JANE";
/// The clinician's note.
pub const NOTE: &str = "Pigmented lesion, left forearm, growing for two months; query melanoma (ref 7Q2X)";
/// The reviewer's reply.
pub const REPLY: &str = "Agree: excise with 2 mm margins and send for histology (ref 9K4W)";
/// One period of the image's pixel run: no codec, header or text writes these bytes by chance.
pub const PIXEL_PATTERN: [u8; 8] = [0xDE, 0xAD, 0x5E, 0xC1, 0x7A, 0x11, 0xB0, 0x0C];
/// Bytes of the pixel run in the image.
pub const PIXEL_RUN_LEN: usize = 4096;

/// One share as a clinician's tab makes it, and the reply a reviewer's tab seals for it.
pub struct Session {
    pub secret: Secret,
    /// The bundle's plaintext bytes (what the envelope seals).
    pub plaintext: Vec<u8>,
    pub sealed: Vec<u8>,
    pub sealed_reply: Vec<u8>,
}

impl Session {
    /// A bundle of one image (a DICOM-like file whose header names the patient, then the pixel run
    /// and a gradient, ~100 KB, so the envelope is two chunks), a diagnosis with a heat map grid,
    /// and the note; sealed with a fresh secret, and a reply sealed with it.
    pub fn new() -> Session {
        let mut image = b"DICM\x10\x00\x10\x00PN\x08\x00".to_vec();
        image.extend_from_slice(PATIENT.as_bytes());
        image.extend(PIXEL_PATTERN.iter().cycle().take(PIXEL_RUN_LEN));
        image.extend((0..96 * 1024).map(|i: u32| (i / 3 % 251) as u8));
        let bundle = Bundle {
            created: "2026-12-04T16:45:00Z".into(),
            images: vec![Image {
                media_type: "application/dicom".into(),
                // A name a careless caller might choose: the format allows it, the relay must not see it.
                name: format!("{PATIENT}.dcm"),
                bytes: image,
            }],
            diagnoses: vec![Diagnosis {
                image: 0,
                task: "skin".into(),
                model: Model { name: "skin-lite0".into(), version: "1.0.0".into(), sha256: "ab".repeat(32) },
                label: "melanoma".into(),
                most_likely: "melanoma".into(),
                probabilities: vec![("melanoma".into(), 0.81), ("nevus".into(), 0.19)],
                thresholds: vec![("melanoma".into(), 0.3)],
                heat_map: Some(HeatMap::Grid { width: 2, height: 2, values: vec![0.1, 0.9, 0.2, 0.4] }),
            }],
            note: NOTE.into(),
        };
        let secret = Secret::generate().expect("random bytes");
        let reply =
            Reply { text: REPLY.into(), opinion: Opinion::Agree, created: "2026-12-05T09:00:00Z".into() };
        Session {
            plaintext: bundle.to_bytes().expect("a valid bundle"),
            sealed: seal_bundle(&secret, &bundle).expect("sealed"),
            sealed_reply: seal_reply(&secret, &reply).expect("sealed"),
            secret,
        }
    }

    /// What must not be found at rest, by name: the bundle's and reply's plaintext, the share's
    /// secret (its bytes and as the link's fragment writes it) and the delete token (its hex as
    /// handed to the sender, and its bytes).
    pub fn secrets(&self, delete_token: &str) -> Vec<(&'static str, Vec<u8>)> {
        let fragment = self.secret.to_fragment();
        let marked = [
            ("patient name", PATIENT.as_bytes().to_vec()),
            ("note", NOTE.as_bytes().to_vec()),
            ("pixel run", PIXEL_PATTERN.iter().cycle().take(32).copied().collect()),
            ("reply text", REPLY.as_bytes().to_vec()),
        ];
        // The markers must be in what was sealed, or their absence would prove nothing.
        for (name, marker) in &marked[..3] {
            assert!(find(&self.plaintext, marker), "the bundle's plaintext lacks the {name}");
        }
        let mut secrets = marked.to_vec();
        secrets.extend([
            ("secret key", self.secret.as_bytes().to_vec()),
            ("secret key in base64url", fragment.trim_start_matches("#k=").as_bytes().to_vec()),
            ("delete token", delete_token.as_bytes().to_vec()),
            ("delete token bytes", hex_bytes(delete_token)),
        ]);
        secrets
    }

    /// What must be found at rest: 32-byte windows of the two envelopes' encrypted bodies, one
    /// every 1 KiB (the first of each lies where no page or chunk boundary can cut it).
    pub fn ciphertext_windows(&self) -> Vec<Vec<u8>> {
        [&self.sealed, &self.sealed_reply]
            .into_iter()
            .flat_map(|sealed| {
                (HEADER_LEN..sealed.len() - 32).step_by(1024).map(|at| sealed[at..at + 32].to_vec())
            })
            .collect()
    }
}

/// Asserts that `places` (a name and its bytes each) hold none of the session's secrets, and that
/// the search looks at the right bytes: they hold at least `tenths` in 10 of its ciphertext windows
/// (a window may straddle a page's boundary on disk), the share's id and its token's hash.
pub fn assert_only_ciphertext(
    moment: &str,
    places: &[(String, Vec<u8>)],
    session: &Session,
    (id, token): (&str, &str),
    tenths: usize,
) {
    assert_eq!(leaked(places, &session.secrets(token)), Vec::<String>::new(), "{moment}");
    let names: Vec<&str> = places.iter().map(|(name, _)| name.as_str()).collect();
    let bytes: Vec<&[u8]> = places.iter().map(|(_, bytes)| bytes.as_slice()).collect();
    let windows = session.ciphertext_windows();
    let found = windows_found(&bytes, &windows);
    eprintln!("{moment}: {found} of {} ciphertext windows in {} places", windows.len(), places.len());
    assert!(
        found * 10 >= windows.len() * tenths,
        "{moment}: {found} of {} ciphertext windows",
        windows.len()
    );
    let plain = [id.as_bytes().to_vec(), token_hash(token)];
    assert_eq!(found_in(&bytes, &plain), [true, true], "{moment}: the id and token hash in {names:?}");
}

/// SHA-256 of the delete token's bytes: what the relay keeps of it.
pub fn token_hash(delete_token: &str) -> Vec<u8> {
    Sha256::digest(hex_bytes(delete_token)).to_vec()
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
}

/// Whether `needle` occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> bool {
    found_in(&[haystack], &[needle.to_vec()])[0]
}

/// For each needle (4 bytes or longer), whether it occurs in any of the haystacks; one pass over
/// each haystack, however many needles (a data folder is tens of megabytes).
pub fn found_in(haystacks: &[&[u8]], needles: &[Vec<u8>]) -> Vec<bool> {
    let prefix = |bytes: &[u8]| u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    let mut by_prefix: HashMap<u32, Vec<usize>> = HashMap::new();
    for (index, needle) in needles.iter().enumerate() {
        assert!(needle.len() >= 4, "needle {index} is shorter than 4 bytes");
        by_prefix.entry(prefix(needle)).or_default().push(index);
    }
    // A bit per hashed prefix skips almost every position without a map lookup.
    let bit = |p: u32| (p.wrapping_mul(0x9E37_79B1) >> 16) as usize;
    let mut filter = vec![false; 1 << 16];
    for &p in by_prefix.keys() {
        filter[bit(p)] = true;
    }
    let mut found = vec![false; needles.len()];
    for haystack in haystacks {
        for at in 0..haystack.len().saturating_sub(3) {
            let p = prefix(&haystack[at..]);
            if !filter[bit(p)] {
                continue;
            }
            for &index in by_prefix.get(&p).into_iter().flatten() {
                found[index] |= haystack[at..].starts_with(&needles[index]);
            }
        }
    }
    found
}

/// Each secret found in a place, as "<secret> in <place>" (empty is the pass).
pub fn leaked(places: &[(String, Vec<u8>)], secrets: &[(&'static str, Vec<u8>)]) -> Vec<String> {
    let needles: Vec<Vec<u8>> = secrets.iter().map(|(_, bytes)| bytes.clone()).collect();
    let mut leaks = Vec::new();
    for (place, bytes) in places {
        for ((secret, _), found) in secrets.iter().zip(found_in(&[bytes], &needles)) {
            if found {
                leaks.push(format!("{secret} in {place}"));
            }
        }
    }
    leaks
}

/// How many of the windows occur in `haystacks`.
pub fn windows_found(haystacks: &[&[u8]], windows: &[Vec<u8>]) -> usize {
    found_in(haystacks, windows).into_iter().filter(|f| *f).count()
}

/// Every regular file under `dir`, read whole (files removed while walking are skipped).
pub fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("a readable folder").flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => folders.push(path),
                Ok(kind) if kind.is_file() => {
                    if let Ok(bytes) = std::fs::read(&path) {
                        files.push((path.display().to_string(), bytes));
                    }
                }
                _ => {}
            }
        }
    }
    files
}

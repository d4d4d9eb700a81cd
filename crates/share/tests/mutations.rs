//! Random damage, a stable stand-in for fuzzing: thousands of flipped, cut, inserted and deleted
//! bytes. A damaged envelope must always fail; a damaged plaintext bundle may still read, but then
//! only as a bundle that Bedside would also write.

mod common;

use bedside_share::envelope::{self, Kind};
use bedside_share::{Bundle, Error, HeatMap, Image, Model};
use common::{noise, secret};

/// A small bundle with every kind of part, so the damage lands in each of them often.
fn small_bundle() -> Bundle {
    let mut bundle = common::sample_bundle();
    bundle.images[0] =
        Image { media_type: "application/dicom".into(), name: "a.dcm".into(), bytes: noise(700, 5) };
    bundle.diagnoses[0].heat_map = Some(HeatMap::Png(noise(90, 6)));
    bundle.diagnoses[1].model = Model { name: "m".into(), version: "1".into(), sha256: "ab".into() };
    bundle
}

/// Deterministic damage: one of flip, cut, insert, delete, at a position from `rng`.
fn damage(bytes: &[u8], rng: &mut u64) -> Vec<u8> {
    let mut next = || {
        // splitmix64
        *rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut out = bytes.to_vec();
    let at = (next() % bytes.len() as u64) as usize;
    match next() % 4 {
        0 => out[at] ^= (next() % 255 + 1) as u8,
        1 => out.truncate(at),
        2 => out.insert(at, next() as u8),
        _ => {
            out.remove(at);
        }
    }
    out
}

#[test]
fn every_damaged_envelope_fails() {
    let plaintext = small_bundle().to_bytes().unwrap();
    // Small chunks: the damage falls in the header, in chunk bodies and tags, and at boundaries.
    let sealed = envelope::seal(&secret(9), Kind::Bundle, &plaintext, 256).unwrap();
    assert!(sealed.len() > 8 * 256);
    let mut rng = 1;
    let mut cannot_decrypt = 0;
    for _ in 0..3_000 {
        let damaged = damage(&sealed, &mut rng);
        match envelope::open(&secret(9), Kind::Bundle, &damaged) {
            Ok(_) => panic!("damaged envelope opened"),
            Err(Error::CannotDecrypt { .. }) => cannot_decrypt += 1,
            Err(_) => {}
        }
    }
    // A quarter of the damage is flips, nearly all of them after the 39-byte header: those fail
    // authentication (cuts, insertions and deletions fail the length check first).
    assert!((600..=750).contains(&cannot_decrypt), "{cannot_decrypt}");
}

#[test]
fn a_damaged_bundle_that_still_reads_is_one_bedside_would_write() {
    let bytes = small_bundle().to_bytes().unwrap();
    let mut rng = 2;
    let mut read = 0;
    for _ in 0..5_000 {
        let damaged = damage(&bytes, &mut rng);
        if let Ok(bundle) = Bundle::from_bytes(&damaged) {
            read += 1;
            let written = bundle.to_bytes().expect("what reads, writes");
            assert_eq!(Bundle::from_bytes(&written).unwrap(), bundle);
        }
    }
    // Some damage leaves a valid bundle (a changed letter of the note), most does not; both happen.
    assert!((1..500).contains(&read), "{read}");
}

//! The sealed bundle against a hostile relay or network: every change, cut, reordering and
//! addition of ciphertext fails with a typed error, and never panics.

mod common;

use bedside_share::envelope::{DEFAULT_CHUNK_SIZE, ENVELOPE_MAGIC, HEADER_LEN, Kind, TAG_LEN};
use bedside_share::{Error, Format, open_bundle, seal_bundle};
use common::{chunk_count, chunk_range, sample_bundle, secret};

fn sealed() -> Vec<u8> {
    seal_bundle(&secret(7), &sample_bundle()).unwrap()
}

fn cannot_decrypt_at(result: Result<bedside_share::Bundle, Error>) -> u64 {
    match result {
        Err(e @ Error::CannotDecrypt { chunk }) => {
            assert_eq!(e.to_string(), "cannot decrypt this share");
            chunk
        }
        other => panic!("expected cannot decrypt, got {other:?}"),
    }
}

#[test]
fn round_trip_spans_several_chunks_and_the_header_is_as_documented() {
    let bundle = sample_bundle();
    let sealed = sealed();
    assert!(chunk_count(&sealed) > 4, "{} chunks", chunk_count(&sealed));
    assert_eq!(open_bundle(&secret(7), &sealed).unwrap(), bundle);

    // FORMAT.md's header table, field by field.
    let plaintext_len = bundle.to_bytes().unwrap().len();
    assert_eq!(&sealed[0..8], b"BEDSIDEC");
    assert_eq!(sealed[0..8], ENVELOPE_MAGIC);
    assert_eq!(sealed[8..10], [0, 1]);
    assert_eq!(sealed[10], Kind::Bundle as u8);
    assert_eq!(sealed[11..15], DEFAULT_CHUNK_SIZE.to_be_bytes());
    assert_eq!(sealed[15..23], (plaintext_len as u64).to_be_bytes());
    assert_eq!(HEADER_LEN, 39);
    let chunks = plaintext_len.div_ceil(DEFAULT_CHUNK_SIZE as usize);
    assert_eq!(sealed.len(), HEADER_LEN + plaintext_len + chunks * TAG_LEN);
}

#[test]
fn two_seals_of_one_bundle_share_no_salt_and_no_chunk() {
    let (a, b) = (sealed(), sealed());
    assert_eq!(a[..23], b[..23], "same header fields but the salt");
    assert_ne!(a[23..HEADER_LEN], b[23..HEADER_LEN], "each envelope draws its own salt");
    for i in 0..chunk_count(&a) {
        let (ca, cb) = (&a[chunk_range(&a, i)], &b[chunk_range(&b, i)]);
        assert_ne!(ca[..16], cb[..16], "chunk {i} starts the same in both");
        assert_ne!(ca[ca.len() - TAG_LEN..], cb[cb.len() - TAG_LEN..], "chunk {i} has the same tag in both");
    }
}

#[test]
fn wrong_key_cannot_decrypt() {
    let sealed = sealed();
    assert_eq!(cannot_decrypt_at(open_bundle(&secret(8), &sealed)), 0);
    let mut one_bit_off = [7u8; 32];
    one_bit_off[31] ^= 1;
    let other = bedside_share::Secret::from_bytes(one_bit_off);
    assert_eq!(cannot_decrypt_at(open_bundle(&other, &sealed)), 0);
}

#[test]
fn every_header_byte_flipped_fails() {
    let sealed = sealed();
    for at in 0..HEADER_LEN {
        for mask in [0x01u8, 0x80] {
            let mut bad = sealed.clone();
            bad[at] ^= mask;
            let result = open_bundle(&secret(7), &bad);
            match at {
                0..8 => {
                    assert!(matches!(result, Err(Error::NotAShare(Format::Envelope))), "{at}: {result:?}")
                }
                8..10 => assert!(
                    matches!(
                        result,
                        Err(Error::UnknownVersion { format: Format::Envelope, supported: 1, .. })
                    ),
                    "{at}: {result:?}"
                ),
                10 => assert!(
                    matches!(result, Err(Error::UnknownKind(_) | Error::WrongKind { .. })),
                    "{at}: {result:?}"
                ),
                // Chunk size and length: refused by bounds or by the lengths they imply, or, where
                // they still fit, by every chunk's associated data.
                11..23 => assert!(
                    matches!(
                        result,
                        Err(Error::ChunkSize(_)
                            | Error::TooLarge { .. }
                            | Error::Truncated { .. }
                            | Error::TrailingBytes { .. }
                            | Error::CannotDecrypt { chunk: 0 })
                    ),
                    "{at}: {result:?}"
                ),
                _ => assert_eq!(cannot_decrypt_at(result), 0, "salt byte {at}"),
            }
        }
    }
}

#[test]
fn a_flipped_byte_in_any_chunk_fails_at_that_chunk() {
    let sealed = sealed();
    let mut tried = 0;
    for chunk in 0..chunk_count(&sealed) {
        let range = chunk_range(&sealed, chunk);
        // First and last bytes, the tag's first byte, and a stride through the chunk.
        let mut positions = vec![range.start, range.end - 1, range.end - TAG_LEN];
        positions.extend((range.start..range.end).step_by(4093));
        for at in positions {
            let mut bad = sealed.clone();
            bad[at] ^= 0x20;
            assert_eq!(cannot_decrypt_at(open_bundle(&secret(7), &bad)), chunk as u64, "byte {at}");
            tried += 1;
        }
    }
    assert!(tried > 50, "{tried} positions");
}

#[test]
fn truncation_anywhere_is_reported_as_truncated() {
    let sealed = sealed();
    let mut cuts: Vec<usize> = (0..HEADER_LEN + 40).collect();
    cuts.extend((0..sealed.len()).step_by(3001));
    for chunk in 0..chunk_count(&sealed) {
        let end = chunk_range(&sealed, chunk).end;
        cuts.extend([end - 1, end, end - TAG_LEN]);
    }
    cuts.retain(|&cut| cut < sealed.len());
    for cut in cuts {
        match open_bundle(&secret(7), &sealed[..cut]) {
            Err(Error::Truncated { format: Format::Envelope, found, needed }) => {
                assert_eq!(found, cut as u64);
                assert!(needed > found);
                if cut >= HEADER_LEN {
                    assert_eq!(needed, sealed.len() as u64, "the header declares the whole length");
                }
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn reordered_chunks_cannot_decrypt() {
    let sealed = sealed();
    let (one, two) = (chunk_range(&sealed, 1), chunk_range(&sealed, 2));
    let mut swapped = sealed[..one.start].to_vec();
    swapped.extend_from_slice(&sealed[two.clone()]);
    swapped.extend_from_slice(&sealed[one]);
    swapped.extend_from_slice(&sealed[two.end..]);
    assert_eq!(swapped.len(), sealed.len());
    assert_eq!(cannot_decrypt_at(open_bundle(&secret(7), &swapped)), 1);
}

/// The envelope with the header's plaintext length set as if it held `chunks` full chunks fewer or
/// more, as an attacker would to make a cut or an addition pass the length check.
fn with_length_adjusted(mut sealed: Vec<u8>, delta_chunks: i64) -> Vec<u8> {
    let length = u64::from_be_bytes(sealed[15..23].try_into().unwrap());
    let length = length.strict_add_signed(delta_chunks * i64::from(DEFAULT_CHUNK_SIZE));
    sealed[15..23].copy_from_slice(&length.to_be_bytes());
    sealed
}

#[test]
fn dropped_chunks_are_caught_by_length_and_by_authentication() {
    let sealed = sealed();
    let one = chunk_range(&sealed, 1);
    let mut dropped = sealed[..one.start].to_vec();
    dropped.extend_from_slice(&sealed[one.end..]);
    assert!(matches!(
        open_bundle(&secret(7), &dropped),
        Err(Error::Truncated { format: Format::Envelope, .. })
    ));
    assert_eq!(cannot_decrypt_at(open_bundle(&secret(7), &with_length_adjusted(dropped, -1))), 0);

    // The stream cut after a full chunk, the length made to agree: the new last chunk was sealed
    // as "not last" (and the header no longer matches), so it fails.
    let kept_chunks = chunk_count(&sealed) - 1;
    let mut cut = sealed[..chunk_range(&sealed, kept_chunks - 1).end].to_vec();
    let kept = (kept_chunks * DEFAULT_CHUNK_SIZE as usize) as u64;
    cut[15..23].copy_from_slice(&kept.to_be_bytes());
    assert_eq!(cannot_decrypt_at(open_bundle(&secret(7), &cut)), 0);
}

#[test]
fn appended_chunks_are_refused() {
    let sealed = sealed();
    let mut appended = sealed.clone();
    appended.extend_from_slice(&sealed[chunk_range(&sealed, 1)]);
    match open_bundle(&secret(7), &appended) {
        Err(e @ Error::TrailingBytes { format: Format::Envelope, count }) => {
            assert_eq!(count, u64::from(DEFAULT_CHUNK_SIZE) + TAG_LEN as u64);
            assert_eq!(e.to_string(), format!("the encrypted share has {count} bytes after its end"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cannot_decrypt_at(open_bundle(&secret(7), &with_length_adjusted(appended, 1))), 0);
}

#[test]
fn chunks_spliced_from_another_seal_of_the_same_share_cannot_decrypt() {
    let (a, b) = (sealed(), sealed());
    let two = chunk_range(&a, 2);
    let mut spliced = a.clone();
    spliced[two.clone()].copy_from_slice(&b[two]);
    assert_eq!(cannot_decrypt_at(open_bundle(&secret(7), &spliced)), 2);
}

#[test]
fn unknown_envelope_version_is_named() {
    let mut sealed = sealed();
    sealed[8..10].copy_from_slice(&2u16.to_be_bytes());
    let error = open_bundle(&secret(7), &sealed).unwrap_err();
    assert!(matches!(error, Error::UnknownVersion { format: Format::Envelope, version: 2, supported: 1 }));
    assert_eq!(error.to_string(), "unknown encrypted share version 2: this Bedside reads version 1");
}

#[test]
fn not_an_envelope_and_oversized_declarations_are_refused_before_allocating() {
    assert!(matches!(
        open_bundle(&secret(7), b"<html>not a share</html>"),
        Err(Error::NotAShare(Format::Envelope))
    ));
    let mut sealed = sealed();
    sealed[15..23].copy_from_slice(&u64::MAX.to_be_bytes());
    assert!(matches!(
        open_bundle(&secret(7), &sealed),
        Err(Error::TooLarge { format: Format::Bundle, size: u64::MAX, .. })
    ));
    sealed[11..15].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(open_bundle(&secret(7), &sealed), Err(Error::ChunkSize(u32::MAX))));
}

#[test]
fn empty_plaintext_is_one_authenticated_chunk() {
    let sealed = bedside_share::envelope::seal(&secret(1), Kind::Bundle, &[], 256).unwrap();
    assert_eq!(sealed.len(), HEADER_LEN + TAG_LEN);
    assert_eq!(bedside_share::envelope::open(&secret(1), Kind::Bundle, &sealed).unwrap(), Vec::<u8>::new());
    let mut bad = sealed.clone();
    bad[HEADER_LEN] ^= 1;
    assert!(matches!(
        bedside_share::envelope::open(&secret(1), Kind::Bundle, &bad),
        Err(Error::CannotDecrypt { chunk: 0 })
    ));
}

#[test]
fn chunk_size_bounds_and_exact_multiples() {
    use bedside_share::envelope::{MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, open, seal};
    assert!(matches!(seal(&secret(1), Kind::Bundle, b"x", MIN_CHUNK_SIZE - 1), Err(Error::ChunkSize(255))));
    assert!(matches!(seal(&secret(1), Kind::Bundle, b"x", MAX_CHUNK_SIZE + 1), Err(Error::ChunkSize(_))));
    // A plaintext of exactly two chunks is two chunks, the second marked last, with no empty third.
    let plaintext = common::noise(512, 9);
    let sealed = seal(&secret(1), Kind::Bundle, &plaintext, 256).unwrap();
    assert_eq!(sealed.len(), HEADER_LEN + 2 * (256 + TAG_LEN));
    assert_eq!(open(&secret(1), Kind::Bundle, &sealed).unwrap(), plaintext);
}

//! Photos (JPEG, PNG, WebP), from bytes to drawn pixels (seeds in `fuzz/corpus/photo`, tokens in
//! `fuzz/photo.dict`). The same entry as the DICOM target: only the seeds and tokens differ.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bedside_imaging::fuzzing::decode(data);
});

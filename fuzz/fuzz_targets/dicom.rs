//! DICOM files, from bytes to drawn pixels (seeds in `fuzz/corpus/dicom`, tokens in `fuzz/dicom.dict`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bedside_imaging::fuzzing::decode(data);
});

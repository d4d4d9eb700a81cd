//! DICOM files holding JPEG 2000 and HTJ2K streams, from bytes to drawn pixels: the DICOM target's
//! entry, seeded with the corpus's JPEG 2000 files and the reference run's HTJ2K ones, with the
//! codestream's markers as tokens (`fuzz/jpeg2000.dict`), so its executions reach openjp2.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bedside_imaging::fuzzing::decode(data);
});

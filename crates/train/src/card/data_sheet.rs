//! What the card says about each task's data set: citation, licence, image preparation, split and
//! known differences from clinical images. Copied from `shared/data/<task>/README.md`; the counts
//! come from the run, not from here.

use bedside_model::task::Task;

/// Where a task's images come from and what was done to them.
pub struct DataSheet {
    pub source: &'static str,
    pub images: &'static str,
    pub split: &'static str,
    /// Known ways the data differ from what a clinic will show the model.
    pub shifts: &'static [&'static str],
    /// What the class names mean, where they are abbreviations.
    pub glossary: Option<&'static str>,
}

/// The data sheet of `task`'s data set.
pub fn data_sheet(task: Task) -> DataSheet {
    match task {
        Task::Chest => DataSheet {
            source: "Kermany D, Zhang K, Goldbaum M. Labeled Optical Coherence Tomography (OCT) and Chest X-Ray \
                     Images for Classification. Mendeley Data v2 (2018), doi:10.17632/rscbjbr9sj.2; Kermany et \
                     al., Cell 172(5):1122–1131 (2018).",
            images: "160 × 160 grey JPEG. Each film is the whole film squashed to a square (the only complete \
                     public copy had already been re-saved at 224 × 224 without keeping the aspect ratio), \
                     then resized.",
            split: "The official training folder, split 90/10 into train and validation, stratified by class and \
                    grouped by patient so that no patient is on both sides. The official test folder (624 \
                    images) is held back.",
            shifts: &[
                "Children's films from a single published collection; adults, other hospitals and other \
                 X-ray equipment are not represented.",
                "The films were published squashed and at low resolution (224 × 224, JPEG quality 75): fine \
                 detail a radiologist would use is not available to the model.",
                "Pneumonia covers bacterial and viral pneumonia together; other findings are not labelled.",
            ],
            glossary: None,
        },
        Task::Skin => DataSheet {
            source: "Tschandl P, Rosendahl C, Kittler H. The HAM10000 dataset, a large collection of \
                     multi-source dermatoscopic images of common pigmented skin lesions. Sci Data 5, 180161 \
                     (2018), doi:10.1038/sdata.2018.161.",
            images: "200 × 150 RGB JPEG: the whole 600 × 450 dermatoscopic frame, downscaled without cropping.",
            split: "Grouped by lesion (and near-duplicate images), 70/10/20 into train, validation and test, \
                    stratified by diagnosis. The test split is held back.",
            shifts: &[
                "Dermatoscopic images of pigmented lesions only; clinical (non-dermatoscopic) photographs are \
                 outside what the model has seen.",
                "Severe class imbalance: nv is about two thirds of the images, and df and vasc have very few \
                 examples.",
                "Images were published downscaled to 200 × 150 and JPEG-compressed.",
            ],
            glossary: Some(
                "akiec: actinic keratosis / intraepithelial carcinoma; bcc: basal cell carcinoma; bkl: benign \
                 keratosis-like lesion; df: dermatofibroma; mel: melanoma; nv: melanocytic nevus; vasc: \
                 vascular lesion.",
            ),
        },
        Task::Breast => DataSheet {
            source: "Al-Dhabyani W, Gomaa M, Khaled H, Fahmy A. Dataset of breast ultrasound images. Data in \
                     Brief 28:104863 (2020), doi:10.1016/j.dib.2019.104863 (780 images from 600 women, Baheya \
                     Hospital, Cairo).",
            images: "160 × 160 grey JPEG: a centre square crop (side = the shorter side), then resized.",
            split: "Near-duplicate frames of the same lesion are grouped into clusters (595 from 780 images, \
                    about one per patient); clusters are split 70/10/20 into train, validation and test, \
                    stratified by class. The test split is held back.",
            shifts: &[
                "One hospital and its ultrasound equipment.",
                "A few near-duplicate clusters carry different labels in the published data (kept as \
                 published), so some labels are noisy.",
            ],
            glossary: None,
        },
        Task::Gate => DataSheet {
            source: "The chest, skin and breast data sets above (each labelled with its own task), and for \
                     `other` the photographs that ship in the scikit-image, scikit-learn and matplotlib \
                     Python packages (cats, coffee, astronauts, buildings, text, a CT phantom, cells…) and \
                     the medical images of other kinds in the DICOM corpus of the pydicom and pydicom-data \
                     packages (CT, MR and nuclear-medicine slices, a leg radiograph, echocardiography and \
                     obstetric, abdominal and vascular ultrasound, segmentations, screen captures). The \
                     corpus's adult chest film (RG1) is left out of training: what the gate does with it is \
                     reported below.",
            images: "Every picture squashed to 64 × 64 RGB (grey films repeated into three channels). Each \
                     `other` photograph is cut into many random crops, half of them turned grey, so that \
                     neither colour nor framing alone tells a photograph from a film (a gate whose settings \
                     record `whole_photo` also sees each photograph whole, as the app frames it); each corpus \
                     frame is used whole, drawn as the app draws it, and in random crops.",
            split: "Each task's own train and validation splits; the photographs are split by file (near-copies such as \
                    a stereo pair kept together) and the corpus files by modality and size (a file's re-encodings \
                    together), one group in four held out for validation, so validation measures pictures the gate never saw.",
            shifts: &[
                "About thirty photographs and forty kinds of medical image stand for everything else a \
                 clinician might open; pictures unlike all of them (clinical skin photos, other scanners' \
                 output) may not be refused.",
                "Each task's images come from one collection: films or scans from other equipment may look \
                 less like their task to the gate.",
            ],
            glossary: Some(
                "chest: pediatric chest X-ray; skin: dermatoscopy; breast: breast ultrasound; other: anything \
                 else, which Bedside refuses.",
            ),
        },
    }
}

//! The text of `MODEL_CARD.md`, section by section. Paragraphs are single lines; a Markdown viewer
//! wraps them.

use super::data_sheet::{DataSheet, data_sheet};
use super::{BINS, CardInputs, RESAMPLES, estimate, num, thousands, val_counts};
use crate::metrics::Report;
use crate::pipeline::target_sensitivity;
use crate::trainer::TrainSettings;
use bedside_model::artifact::ModelInfo;
use bedside_model::input::{Framing, Intensity};
use bedside_model::student::Architecture;
use bedside_model::task::Task;

/// Appends one line (no arguments: an empty line).
macro_rules! put {
    ($out:expr) => { $out.push('\n') };
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        writeln!($out, $($arg)*).expect("writing to a String");
    }};
}

/// The whole card: the body, with `sections` (later steps' measurements) after the validation
/// results.
pub fn card(inputs: &CardInputs, sections: &str) -> String {
    let info = inputs.info;
    let task = info.task;
    let sheet = data_sheet(task);
    let settings: Option<TrainSettings> = serde_json::from_value(info.card["settings"].clone()).ok();
    let mut out = String::new();

    put!(out, "# Bedside {} model — {}", task.name(), task.title());
    put!(out);
    if let Some(batches) = settings.as_ref().and_then(|s| s.max_batches) {
        put!(
            out,
            "> **Smoke run.** Every epoch stopped after {batches} batches. This model only proves that the \
             training pipeline works; it must not be used on patients."
        );
        put!(out);
    }
    put!(out, "| | |\n|---|---|");
    put!(out, "| Task | `{}` ({}) |", task.name(), info.classes.join(", "));
    put!(
        out,
        "| Output | calibrated probability of each class, and one decision (see \
         [Operating point](#operating-point)) |"
    );
    put!(out, "| Artifact | `model.json` + `model-fp32.bin`, format version {} |", info.format_version);
    put!(out, "| Bedside version | {} |", env!("CARGO_PKG_VERSION"));
    put!(out, "| Weights made at commit | {} |", commit(inputs.training_commit.as_ref()));
    put!(out, "| Validation measured at commit | {} |", commit(inputs.commit.as_ref()));
    put!(out, "| Training data licence | {} |", task.data_licence());
    put!(out);

    put!(out, "## Intended use\n");
    if task == Task::Gate {
        put!(
            out,
            "- **A check before every diagnosis, not a diagnosis.** The gate decides which of Bedside's \
             three models a picture goes to — chest X-ray, dermatoscopy, breast ultrasound — and refuses \
             pictures that are none of them, so that a model never answers about something it was not \
             trained on."
        );
        put!(
            out,
            "- It is not proof that a picture is fit for diagnosis: a film of poor quality, or an adult's \
             film, is still routed to the chest model. The chest model, made for children, then refuses \
             a film whose DICOM file gives an adult patient's age (Patient's Age, or Birth Date and the \
             study's date); a photo or a file without an age it answers."
        );
        put!(out);
    } else {
        intended_use(&mut out, task);
    }

    data_section(&mut out, inputs, &sheet);
    network_section(&mut out, inputs);
    training_section(&mut out, inputs, settings.as_ref());
    calibration_section(&mut out, inputs);
    operating_section(&mut out, inputs);
    results_section(&mut out, inputs);
    out.push_str(sections);
    measured_section(&mut out, inputs);
    limitations_section(&mut out, inputs, &sheet);
    out
}

fn intended_use(out: &mut String, task: Task) {
    if task == Task::Chest {
        put!(
            out,
            "- **For children's chest films.** The training films are of children aged one to five. A DICOM \
             file that gives an adult patient's age (18 or older, from Patient's Age or the Birth Date \
             against the study's date) gets no answer (`bedside_model::gate::age_refusal`); on a photo or \
             a file without an age, check that the patient is a child."
        );
    }
    put!(
        out,
        "- **Decision support for clinicians at the point of care.** The model's output is a second opinion \
         to weigh with the history, the examination and other tests. **It is not a diagnosis.**"
    );
    put!(
        out,
        "- **Heat maps show where the model looked, not where disease is.** A bright region is what drove \
         the model's score; it may be an artefact, a marker or normal anatomy."
    );
    put!(
        out,
        "- Use it only on images like the training data (below). On anything else — another modality, \
         another population, a photo of a screen — its accuracy is unknown."
    );
    put!(out);
}

fn commit(commit: Option<&String>) -> String {
    commit.map_or("not recorded".into(), |c| format!("`{c}`"))
}

fn data_section(out: &mut String, inputs: &CardInputs, sheet: &DataSheet) {
    let info = inputs.info;
    let classes = &info.classes;
    put!(out, "## Data\n");
    put!(out, "- **Source:** {}", sheet.source);
    put!(out, "- **Licence:** {}", info.task.data_licence());
    put!(out, "- **Images:** {}", sheet.images);
    put!(out, "- **Split:** {}", sheet.split);
    if let Some(glossary) = sheet.glossary {
        put!(out, "- **Classes:** {glossary}");
    }
    put!(out);
    put!(out, "| split | {} | total |", classes.join(" | "));
    put!(out, "|---|{}---:|", "---:|".repeat(classes.len()));
    let val = val_counts(&inputs.validation);
    for (name, row) in [("train", &inputs.train_counts[..]), ("validation", &val[..])] {
        let cells: Vec<String> = row.iter().map(|n| n.to_string()).collect();
        put!(out, "| {name} | {} | {} |", cells.join(" | "), row.iter().sum::<usize>());
    }
    put!(out, "| test | held back{} |", " |".repeat(classes.len()));
    put!(out);
    let input = &info.input;
    let colour = if input.channels == 1 { "grey (a colour picture is converted to luma)" } else { "RGB" };
    let framing = match input.framing {
        Framing::Squash => "the whole picture, squashed to the input shape without keeping its aspect ratio",
        Framing::CenterCrop => "the largest centred crop with the input's aspect ratio, then resized",
    };
    let list = |v: &[f32]| v.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(", ");
    let intensity = match input.intensity {
        Intensity::AsShown => "",
        Intensity::Equalised => {
            " The grey levels are histogram-equalised first, so a picture taken with another exposure, \
             contrast or gamma reaches the model unchanged."
        }
    };
    put!(
        out,
        "**Model input:** {} × {} pixels, {colour}; framing: {framing}.{intensity} Pixels are scaled \
         to 0–1 and normalised with the training set's per-channel mean ({}) and standard deviation ({}). The app \
         prepares every picture this way before the model sees it.{mirror}",
        input.width,
        input.height,
        list(&input.mean),
        list(&input.std),
        mirror = if input.mirror_average {
            " The model reads the picture and its left–right mirror image and averages the two \
             answers (logits) and heat maps (test-time augmentation: two passes per diagnosis)."
        } else {
            ""
        }
    );
    put!(out);
}

fn network_section(out: &mut String, inputs: &CardInputs) {
    let net = &inputs.info.network;
    let channels = match net.in_channels {
        1 => "grey input (1 channel)".to_string(),
        n => format!("{n} input channels"),
    };
    put!(out, "## Network\n");
    if net.architecture() == Architecture::EfficientNetLite0 {
        lite0_network(out, inputs, &channels);
        return;
    }
    put!(
        out,
        "- **Student (shipped):** MobileNetV2-style — inverted residual blocks with squeeze-excitation in \
         the later stages, a 1 × 1 head convolution of {} channels, global average pooling and one linear \
         layer. Width multiplier {}, squeeze-excitation ratio {}, dropout {}, {channels}, {} classes.",
        net.head_channels,
        net.width,
        net.se_ratio,
        net.dropout,
        net.num_classes
    );
    put!(
        out,
        "- **Size:** {} parameters after folding BatchNorm into the convolutions; `model-fp32.bin` holds \
         them as 32-bit floats in {} bytes ({:.2} MB).",
        thousands(inputs.params as u64),
        thousands(inputs.weights_bytes),
        inputs.weights_bytes as f64 / 1e6
    );
    if inputs.info.network.hidden.is_some() {
        put!(
            out,
            "- **Pruned:** trained at full width, then whole channels removed and fine-tuned towards the \
             unpruned network's outputs; see [Pruning](#pruning)."
        );
    }
    if let Some(from) = inputs.info.card["initialised_from"].as_str() {
        put!(out, "- **Initialisation:** {from}.");
    }
    let Some(teacher) = &inputs.teacher else {
        put!(out, "- **Teacher:** none; the student learned from the labels alone.");
        put!(out);
        return;
    };
    let network =
        inputs.info.card["teacher"]["network"].as_str().unwrap_or("EfficientNet-Lite0 with ImageNet weights");
    let s = &teacher.settings;
    let aucs: Vec<String> = teacher.val_auc.iter().map(|a| num(*a)).collect();
    put!(
        out,
        "- **Teacher (for distillation, not shipped):** {network}. Trained for {} epochs (batch {}, \
         learning rate {}, seed {}, {}) on {} fixed augmented views of every training image, stages \
         {} on. Its validation AUC of {} after each epoch: {}.",
        s.epochs,
        s.batch_size,
        s.learning_rate,
        s.seed,
        if s.class_weights { "classes weighted as the student's" } else { "unweighted" },
        s.views,
        s.stage,
        inputs.info.task.positive_class(),
        aucs.join(", ")
    );
    put!(out);
    let rule = if inputs.info.task.uses_threshold() {
        format!("{} called at probability ≥ 0.5", inputs.info.task.positive_class())
    } else {
        "the most probable class".to_string()
    };
    let intervals = if teacher.validation.groups == 0 { "; intervals over single images" } else { "" };
    put!(out, "Teacher on validation (probabilities not calibrated; {rule}{intervals}):\n");
    metrics_table(out, &teacher.validation, inputs.info);
}

/// The network section of a model that is EfficientNet-Lite0 adapted as the teacher is: the
/// adaptation is its training, so it is told here, and its own validation is the card's.
fn lite0_network(out: &mut String, inputs: &CardInputs, channels: &str) {
    let net = &inputs.info.network;
    let input = &inputs.info.input;
    let macs = net.init(&burn::prelude::Device::flex()).macs(input.height as usize, input.width as usize);
    put!(
        out,
        "- **Network (shipped):** EfficientNet-Lite0 — a stride-2 stem, 16 mobile inverted bottleneck \
         blocks with 3 × 3 and 5 × 5 depthwise convolutions and no squeeze-excitation, a 1 × 1 head \
         convolution of {} channels, global average pooling and one linear layer; {channels}, {} classes, \
         dropout {}. {:.0} million multiply–accumulates per {} × {} picture.",
        net.head_channels,
        net.num_classes,
        net.dropout,
        macs as f64 / 1e6,
        input.width,
        input.height
    );
    put!(
        out,
        "- **Size:** {} parameters after folding BatchNorm into the convolutions; `model-fp32.bin` holds \
         them as 32-bit floats in {} bytes ({:.2} MB). It is larger than the ≤ 1 M-parameter students \
         because none of them reached this task's targets ({}).",
        thousands(inputs.params as u64),
        thousands(inputs.weights_bytes),
        inputs.weights_bytes as f64 / 1e6,
        if inputs.info.card["size_curve"].is_null() {
            "see models/README.md"
        } else {
            "see [Size against accuracy](#size-against-accuracy) and models/README.md"
        }
    );
    if let Some(teacher) = &inputs.teacher {
        let s = &teacher.settings;
        let grey = if net.in_channels == 1 {
            " The stem's three colour planes are summed into one, so a grey picture gives exactly what \
             ImageNet's network gives on it repeated in three channels."
        } else {
            ""
        };
        put!(
            out,
            "- **Training:** started from EfficientNet-Lite0's ImageNet weights. The stem and stages 0–{} \
             stay as ImageNet trained them; their output was computed once on {} fixed augmented views of \
             every training image, and stages {}–6, the head convolution and a new classifier were trained \
             on those maps for {} epochs (batch {}, AdamW at learning rate {} with cosine decay, seed {}, {}).{grey}",
            s.stage.saturating_sub(1),
            s.views,
            s.stage,
            s.epochs,
            s.batch_size,
            s.learning_rate,
            s.seed,
            if s.class_weights { "each class weighted by (N / (K · n_class))^½" } else { "unweighted" },
        );
        if s.lesion_weight > 0.0 {
            let dice: Vec<String> = teacher.lesion_val_dice.iter().map(|d| num(*d)).collect();
            // The maps entering stages 2, 3 and 5; the map entering the first trained stage is still
            // a frozen stage's output.
            let (frozen, trained): (Vec<_>, Vec<_>) =
                [(2, "1/4"), (3, "1/8"), (5, "1/16")].iter().partition(|&&(entering, _)| entering <= s.stage);
            let list = |maps: &[&(usize, &str)]| {
                let sides: Vec<&str> = maps.iter().map(|m| m.1).collect();
                match sides.split_last() {
                    Some((last, [])) => last.to_string(),
                    Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                    None => String::new(),
                }
            };
            let taps = match (frozen.is_empty(), trained.is_empty()) {
                (false, true) => format!("{} of the input (from frozen stages)", list(&frozen)),
                (true, false) => format!("{} of the input (from trained stages)", list(&trained)),
                _ => format!(
                    "{} of the input (from frozen stages), {} (from trained ones)",
                    list(&frozen),
                    list(&trained)
                ),
            };
            put!(
                out,
                "- **Trained on the lesion outlines too:** beside the classification loss, a small lesion \
                 decoder on the maps at {} and the head's map learned the \
                 authors' outlines of the same views (binary cross-entropy plus soft Dice, weight {}), so \
                 the trained stages learned where the lesion is as well as what it is. That decoder was then \
                 dropped: the shipped one is trained on the finished network (see Lesion outline). Its Dice \
                 at 1/4 of the input on validation after each epoch: {}.",
                taps,
                s.lesion_weight,
                if dice.is_empty() { "not recorded".to_string() } else { dice.join(", ") }
            );
        }
    }
    put!(out);
}

fn training_section(out: &mut String, inputs: &CardInputs, settings: Option<&TrainSettings>) {
    put!(out, "## Training\n");
    let lite0 = inputs.info.network.architecture() == Architecture::EfficientNetLite0;
    if let (true, Some(s)) = (lite0, settings) {
        let a = &s.augment;
        put!(
            out,
            "As told under [Network](#network). The cached views were augmented with rotation ±{}°, zoom \
             {}–{}, shift ±{} of the side, brightness ±{}, contrast ±{}, left–right mirror {}.\n",
            a.rotate_degrees,
            a.scale.0,
            a.scale.1,
            a.shift,
            a.brightness,
            a.contrast,
            if a.mirror { "yes" } else { "no" }
        );
    }
    if let Some(s) = settings.filter(|_| !lite0) {
        let a = &s.augment;
        put!(out, "| setting | value |\n|---|---|");
        put!(out, "| epochs | {} |", s.epochs);
        if let Some(m) = s.max_batches {
            put!(out, "| batches per epoch | at most {m} (smoke run) |");
        }
        put!(out, "| batch size | {} |", s.batch_size);
        put!(
            out,
            "| optimiser | AdamW, peak learning rate {}, weight decay {} |",
            s.learning_rate,
            s.weight_decay
        );
        put!(out, "| schedule | linear warm-up over the first epoch, then cosine decay to 2 % of the peak |");
        let weights =
            if s.class_weights { "each class weighted by (N / (K · n_class))^½" } else { "unweighted" };
        put!(out, "| loss | cross-entropy, {weights} |");
        match &s.distillation {
            Some(d) => put!(
                out,
                "| distillation | KL divergence to the teacher at temperature {}, weight α = {} \
                 (labels 1 − α) |",
                d.temperature,
                d.alpha
            ),
            None => put!(out, "| distillation | none |"),
        }
        put!(
            out,
            "| augmentation | rotation ±{}°, zoom {}–{}, shift ±{} of the side, brightness ±{}, contrast \
             ±{}{}{}, left–right mirror {} |",
            a.rotate_degrees,
            a.scale.0,
            a.scale.1,
            a.shift,
            a.brightness,
            a.contrast,
            if a.noise > 0.0 {
                format!(", Gaussian noise σ up to {} of full scale", a.noise)
            } else {
                String::new()
            },
            if a.shift_share > 0.0 {
                format!(
                    "; {:.0} % of views first get one acquisition shift (noise, blur, contrast, brightness, \
                     gamma or JPEG, up to the shift panel's severity 3)",
                    100.0 * a.shift_share
                )
            } else {
                String::new()
            },
            if a.mirror { "yes" } else { "no" }
        );
        put!(out, "| seed | {} |", s.seed);
        put!(out);
    }
    if let Some(command) = inputs.info.card["training_command"].as_str() {
        put!(out, "Command:\n\n```sh\n{command}\n```\n");
    }
    // Which run of the recipe shipped, and how many were tried: recorded by hand in model.json
    // ("provenance") where it is known.
    if let Some(provenance) = inputs.info.card["provenance"].as_str() {
        put!(out, "**Which run shipped.** {provenance}\n");
    }
    if inputs.info.network.hidden.is_some() {
        // The card was rewritten by the pruning run: its commit, and weights that are no longer these.
        put!(
            out,
            "Commit of the pruning run: {}. The shipped weights are those after the last epoch, pruned and \
             fine-tuned (see [Pruning](#pruning)).\n",
            commit(inputs.training_commit.as_ref())
        );
    } else {
        put!(
            out,
            "Commit: {}. The shipped weights are those after the last epoch.\n",
            commit(inputs.training_commit.as_ref())
        );
    }
    put!(
        out,
        "| epoch | train loss | val loss | val AUC ({}) | learning rate | seconds |",
        inputs.info.task.positive_class()
    );
    put!(out, "|---:|---:|---:|---:|---:|---:|");
    for h in &inputs.history {
        let opt = |v: Option<f64>, digits: usize| v.map_or("–".into(), |v| format!("{v:.digits$}"));
        put!(
            out,
            "| {} | {:.4} | {} | {} | {:.2e} | {:.0} |",
            h.epoch,
            h.train_loss,
            opt(h.val_loss, 4),
            opt(h.val_auc, 3),
            h.learning_rate,
            h.seconds
        );
    }
    put!(out);
    put!(out, "![Training curves](plots/training.png)\n");
    put!(
        out,
        "The train loss is class-weighted and measured on augmented images (plus the distillation term when \
         distilled); the validation loss is plain cross-entropy before calibration. They are not on the \
         same scale: compare each with itself across epochs."
    );
    put!(out);
}

fn calibration_section(out: &mut String, inputs: &CardInputs) {
    put!(out, "## Calibration\n");
    put!(
        out,
        "The logits are divided by a temperature **T = {:.4}** before the softmax, fitted on the validation \
         set by minimising its negative log-likelihood. After calibration the expected calibration error \
         on validation is **ECE = {}** ({BINS} bins): the gap between the model's confidence in its top \
         class and how often that class is right, averaged over the images. At 0, answers given with \
         80 % confidence would be right 80 % of the time.",
        inputs.info.temperature,
        num(inputs.validation.ece)
    );
    if let Some(floor) = inputs.validation.ece_if_calibrated {
        put!(out);
        put!(
            out,
            "ECE over bins is biased upwards on a small set: a perfectly calibrated model with these very \
             probabilities would measure **{}** (95 % of draws {}–{}) on these {} images (labels drawn from \
             the probabilities, {} times). A measured ECE inside that range is no evidence of miscalibration.",
            num(floor.value),
            num(floor.low),
            num(floor.high),
            inputs.validation.n,
            RESAMPLES
        );
    }
    put!(out);
    put!(out, "![Reliability diagram](plots/calibration.png)\n");
}

fn operating_section(out: &mut String, inputs: &CardInputs) {
    let (info, report) = (inputs.info, &inputs.validation);
    let positive = info.task.positive_class();
    put!(out, "## Operating point\n");
    match info.threshold {
        Some(_) if info.task == Task::Gate => put!(
            out,
            "**Refusal floor.** A picture goes to the most probable of chest, skin and breast when that \
             probability is at least the floor and above other's; otherwise it is refused. The floor is \
             chosen on validation so that {keep:.1} % of the correctly routed task images pass, on the \
             weights that ship (see the routing section below for its value and what it refuses). The \
             numbers in this section and the next are for the plain most-probable-class decision, other \
             included.",
            keep = 100.0 * crate::pipeline::GATE_KEEP
        ),
        Some(t) => {
            let target = target_sensitivity(info.task) as f64;
            put!(
                out,
                "**Threshold {t:.4}** on the calibrated probability of {positive}: the app reports \
                 {positive} when its probability is at least {t:.4}, and otherwise the most probable of the \
                 other classes."
            );
            put!(out);
            let fitted_on = info.card["calibration"]["threshold_fitted_on"].as_str().unwrap_or("");
            let on_int8 = info.card["calibration"]["fitted_on"].as_str() == Some("model.bin");
            let on = if fitted_on.starts_with("out-of-fold") {
                "the out-of-fold predictions of a grouped cross-validation on the train split (every train \
                 image scored by a network that did not see it; see the cross-validation section)"
            } else if on_int8 {
                "the validation set, on the probabilities of the int8 weights that ship (temperature too),"
            } else {
                "the validation set"
            };
            put!(
                out,
                "It was chosen on {on} as the threshold with the highest accuracy (ties: \
                 balanced accuracy) among those that keep the sensitivity for {positive} at or above \
                 **{target:.2}**: missing {positive} costs more than a false alarm."
            );
            // The target is an f32: 17 of 20 is 0.85 but below 0.85f32 widened.
            let below = report.sensitivity.value < target - 1e-6;
            if below && fitted_on.starts_with("out-of-fold") {
                put!(
                    out,
                    "On the validation set it keeps a sensitivity of {:.3}, below that target.",
                    report.sensitivity.value
                );
            } else if below && on_int8 {
                put!(
                    out,
                    "The full-precision weights, whose figures this card gives, keep a sensitivity of {:.3} \
                     there; the int8 weights keep the target (the int8 section).",
                    report.sensitivity.value
                );
            } else if below {
                put!(
                    out,
                    "**No threshold reached that target on validation**; the one with the best accuracy \
                     was kept."
                );
            }
        }
        None => put!(
            out,
            "No threshold: the app reports the most probable class (argmax of the calibrated \
             probabilities)."
        ),
    }
    put!(out);
    put!(
        out,
        "On validation at this operating point: sensitivity for {positive} {}, specificity {}.",
        estimate(&report.sensitivity),
        estimate(&report.specificity)
    );
    put!(out);
}

pub fn metrics_table(out: &mut String, report: &Report, info: &ModelInfo) {
    let positive = info.task.positive_class();
    let auc =
        if info.classes.len() == 2 { format!("AUC ({positive})") } else { "AUC (macro, one-vs-rest)".into() };
    put!(out, "| metric | value (95 % CI) |\n|---|---|");
    put!(out, "| accuracy | {} |", estimate(&report.accuracy));
    put!(out, "| balanced accuracy | {} |", estimate(&report.balanced_accuracy));
    put!(out, "| {auc} | {} |", estimate(&report.auc));
    put!(out, "| AUC of {positive} vs rest | {} |", estimate(&report.positive_auc));
    put!(out, "| sensitivity ({positive}) | {} |", estimate(&report.sensitivity));
    put!(out, "| specificity ({positive}) | {} |", estimate(&report.specificity));
    put!(out, "| precision ({positive}) | {} |", estimate(&report.precision));
    put!(out, "| F1 ({positive}) | {} |", estimate(&report.f1));
    match report.ece_if_calibrated {
        Some(floor) => put!(
            out,
            "| ECE ({BINS} bins) | {} (a calibrated model: {}, {}–{}) |",
            num(report.ece),
            num(floor.value),
            num(floor.low),
            num(floor.high)
        ),
        None => put!(out, "| ECE ({BINS} bins) | {} |", num(report.ece)),
    }
    put!(out);
}

fn results_section(out: &mut String, inputs: &CardInputs) {
    let (info, report) = (inputs.info, &inputs.validation);
    let classes = &info.classes;
    put!(out, "## Results on validation ({} images)\n", report.n);
    metrics_table(out, report, info);
    put!(out, "| class | validation images | correctly called | recall (95 % CI) |");
    put!(out, "|---|---:|---:|---|");
    for (c, name) in classes.iter().enumerate() {
        let total: usize = report.confusion[c].iter().sum();
        let recall =
            report.per_class_recall_ci.get(c).map_or_else(|| num(report.per_class_recall[c]), estimate);
        put!(out, "| {name} | {total} | {} | {recall} |", report.confusion[c][c]);
    }
    put!(out);
    put!(out, "Confusion matrix (rows: true class; columns: the model's decision):\n");
    put!(out, "| true \\ decided | {} |", classes.join(" | "));
    put!(out, "|---|{}", "---:|".repeat(classes.len()));
    for (name, row) in classes.iter().zip(&report.confusion) {
        let cells: Vec<String> = row.iter().map(|n| n.to_string()).collect();
        put!(out, "| **{name}** | {} |", cells.join(" | "));
    }
    put!(out);
    put!(out, "![Confusion matrix](plots/confusion.png)\n");
    let positive = info.task.positive_class();
    let curves =
        if classes.len() == 2 { format!("ROC curve of {positive}") } else { "One-vs-rest ROC curves".into() };
    put!(out, "{curves}; the dot is the operating point above.\n");
    put!(out, "![ROC curves](plots/roc.png)\n");
}

fn measured_section(out: &mut String, inputs: &CardInputs) {
    let task = inputs.info.task;
    let positive = task.positive_class();
    put!(out, "## How the numbers were measured\n");
    put!(
        out,
        "- On the validation split only, with calibrated probabilities and the decision rule above — the \
         same path the app takes. `bedside eval --model models/{} --split val` recomputes them from the \
         shipped files and prints the main ones (accuracy, balanced accuracy, AUC, sensitivity, \
         specificity, per-class recall, ECE, with intervals) as JSON.",
        task.name()
    );
    let report = &inputs.validation;
    if report.groups > 0 {
        put!(
            out,
            "- 95 % intervals: percentile bootstrap, {RESAMPLES} resamples with a fixed seed, each drawing \
             whole groups — {} — with replacement: the {} validation images come from {} groups, and \
             near-copies of one case do not narrow an interval.",
            group_kind(inputs.info.task),
            report.n,
            thousands(report.groups as u64)
        );
    } else {
        put!(
            out,
            "- 95 % intervals: percentile bootstrap, {RESAMPLES} resamples of the validation images with a \
             fixed seed."
        );
    }
    put!(
        out,
        "- Sensitivity, specificity, precision and F1 are for {positive} against all other classes; \
         balanced accuracy is the mean of the per-class recalls."
    );
    if inputs.info.classes.len() == 2 {
        put!(out, "- AUC is the area under the ROC curve of the {positive} probability (ties count half).");
    } else {
        put!(
            out,
            "- AUC is the mean of the one-vs-rest AUCs of all classes; the {positive} AUC is that \
             class's own."
        );
    }
    put!(
        out,
        "- ECE: expected calibration error of the top class's probability over {BINS} equal-width bins."
    );
    put!(out);
}

fn limitations_section(out: &mut String, inputs: &CardInputs, sheet: &DataSheet) {
    let classes = &inputs.info.classes;
    put!(out, "## Limitations\n");
    put!(
        out,
        "- **Validation set only.** The temperature and the operating threshold were fitted on the same \
         validation images these numbers come from, so they are optimistic. The test split is held back; \
         the shipped model is judged on it."
    );
    let val = val_counts(&inputs.validation);
    if let Some((c, smallest)) = val.iter().enumerate().min_by_key(|(_, n)| **n) {
        put!(
            out,
            "- **Small numbers.** {} validation images in all; the smallest class, {}, has {smallest}. The \
             intervals are wide where counts are small: read the interval, not only the point value.",
            inputs.validation.n,
            classes[c]
        );
    }
    for shift in sheet.shifts {
        put!(out, "- {shift}");
    }
    put!(
        out,
        "- Performance in another clinic, on other devices or in another population may be lower than \
         measured here (data set shift); check it on local cases before relying on it."
    );
}

/// What one group of images is, for each task's intervals.
fn group_kind(task: Task) -> &'static str {
    match task {
        Task::Chest => "patients",
        Task::Skin => "lesions (HAM10000's lesion ids: several photographs of one lesion stay together)",
        Task::Breast => "single images, or clusters of near-duplicate images (the same lesion imaged again)",
        Task::Gate => {
            "patients or lesions for the task images, and each held-out photograph or group of medical images for the other pictures"
        }
    }
}

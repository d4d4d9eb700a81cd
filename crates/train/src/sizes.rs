//! Size against accuracy: the shipped network beside smaller candidates for the same task, each
//! measured as it would ship, so a card can show why a larger network was chosen.

use crate::card::thousands;
use crate::metrics::Report;
use serde::{Deserialize, Serialize};

/// One network as `bedside size-curve` measured it on the val split.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SizePoint {
    /// The network's name as the card's network section gives it.
    pub network: String,
    /// Its model folder, as given on the command line.
    pub folder: String,
    /// The model this card describes.
    pub shipped: bool,
    pub params: usize,
    /// Multiply–accumulates of one forward pass at the network's own input size.
    pub macs: u64,
    /// Passes per diagnosis: 2 where the picture is also read mirrored.
    pub passes: usize,
    pub input: String,
    /// Size of `model.bin` (int8) in bytes.
    pub int8_bytes: u64,
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    /// Macro one-vs-rest AUC (binary AUC for two classes).
    pub auc: f64,
    pub positive_auc: f64,
    pub sensitivity: f64,
}

impl SizePoint {
    /// Multiply–accumulates per diagnosis (every pass).
    pub fn macs_per_diagnosis(&self) -> u64 {
        self.macs * self.passes as u64
    }

    /// The figures of `report`, measured on this network's int8 weights.
    pub fn with_report(mut self, report: &Report) -> SizePoint {
        self.accuracy = report.accuracy.value;
        self.balanced_accuracy = report.balanced_accuracy.value;
        self.auc = report.auc.value;
        self.positive_auc = report.positive_auc.value;
        self.sensitivity = report.sensitivity.value;
        self
    }
}

/// What `bedside size-curve` records in `model.json` (`card.size_curve`).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct SizeCurve {
    /// Validation images each network was measured on.
    pub n: usize,
    /// Smallest first.
    pub points: Vec<SizePoint>,
}

impl SizeCurve {
    pub fn card_section(&self, positive: &str, command: &str) -> String {
        let mut out = format!(
            "## Size against accuracy\n\n\
             Each network as it ships — int8 `model.bin`, its own input size, calibration, decision \
             rule and mirror averaging — on the same {n} validation images, smallest first. \
             Multiply–accumulates are per diagnosis (both passes where the picture is also read \
             mirrored).\n\n\
             | network | model folder | parameters | input | multiply–accumulates | int8 size | accuracy \
             | balanced accuracy | AUC | AUC of {positive} | sensitivity ({positive}) |\n\
             |---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
            n = self.n
        );
        for p in &self.points {
            let name = if p.shipped { format!("**{} (shipped)**", p.network) } else { p.network.clone() };
            out += &format!(
                "| {name} | `{}` | {} | {} | {:.1} M | {:.2} MB | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
                p.folder,
                thousands(p.params as u64),
                p.input,
                p.macs_per_diagnosis() as f64 / 1e6,
                p.int8_bytes as f64 / 1e6,
                p.accuracy,
                p.balanced_accuracy,
                p.auc,
                p.positive_auc,
                p.sensitivity,
            );
        }
        out += &format!(
            "\n![Validation AUC against multiply–accumulates per diagnosis](plots/size_curve.png)\n\n\
             Measured with `{command}`. A folder outside `models/` is a candidate kept where it was \
             trained; its own `model.json` holds the command that made it.\n"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(network: &str, params: usize, macs: u64, passes: usize, auc: f64, shipped: bool) -> SizePoint {
        SizePoint {
            network: network.into(),
            folder: format!("target/{network}"),
            shipped,
            params,
            macs,
            passes,
            input: "128 × 128".into(),
            int8_bytes: params as u64 + 1000,
            accuracy: 0.8,
            balanced_accuracy: 0.7,
            auc,
            positive_auc: auc - 0.01,
            sensitivity: 0.75,
        }
    }

    #[test]
    fn the_section_lists_every_network_with_its_cost_per_diagnosis() {
        let curve = SizeCurve {
            n: 80,
            points: vec![
                point("small", 672_467, 28_574_592, 2, 0.901, false),
                point("large", 3_353_267, 376_686_048, 1, 0.977, true),
            ],
        };
        let text = curve.card_section("malignant", "bedside size-curve --model m --against s");
        assert!(
            text.contains("| small | `target/small` | 672,467 | 128 × 128 | 57.1 M | 0.67 MB |"),
            "{text}"
        );
        assert!(text.contains("| **large (shipped)** | `target/large` | 3,353,267 |"), "{text}");
        assert!(text.contains("| 376.7 M |"), "{text}");
        assert!(text.contains("| 0.901 | 0.891 |"), "{text}");
        assert!(text.contains("AUC of malignant"));
        assert!(text.contains("`bedside size-curve --model m --against s`"));
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }
}

//! The model card's four plots, drawn into an RGB buffer with plotters and written as PNG.
//!
//! Text goes through ab_glyph with a font compiled into the binary, so the plots come out the same on
//! a machine without any system fonts (CI).

use crate::Error;
use crate::trainer::EpochLog;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Every plot's size in pixels: readable on a laptop screen and inline in a Markdown viewer.
pub const SIZE: (u32, u32) = (800, 600);
const FONT: &str = "sans-serif";
/// Distinct, colour-blind-friendlier hues (Tableau 10) for one-vs-rest curves.
const PALETTE: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
/// The positive class (pneumonia, mel, malignant) always in this red.
const EMPHASIS: RGBColor = RGBColor(214, 39, 40);
const GREY: RGBColor = RGBColor(120, 120, 120);
const BAR: RGBColor = RGBColor(107, 174, 214);
const DARK_BLUE: RGBColor = RGBColor(8, 48, 107);

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn std::error::Error>>;

/// One ROC curve: its legend text and its (false positive rate, true positive rate) points.
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// The positive class: drawn thicker, in red.
    pub emphasis: bool,
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Ubuntu Light (Ubuntu Font Licence 1.0) from the epaint_default_fonts crate; every text
        // style in plotters falls back to the Normal face of "sans-serif".
        let font = epaint_default_fonts::UBUNTU_LIGHT;
        let registered = plotters::style::register_font(FONT, FontStyle::Normal, font).is_ok();
        assert!(registered, "the bundled font parses");
    });
}

fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// The legend box of the labelled series, at `position`, as every plot draws it.
fn legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>,
    position: SeriesLabelPosition,
) -> Drawn {
    chart
        .configure_series_labels()
        .position(position)
        .margin(12)
        .label_font(font(16))
        .background_style(WHITE.mix(0.92))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

/// A labelled line of `colour` through `points`, each point dotted.
fn dotted_line<'a, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>,
    points: &[(f64, f64)],
    colour: RGBColor,
    label: &str,
) -> Drawn {
    let style = colour.stroke_width(2);
    chart.draw_series(LineSeries::new(points.iter().copied(), style))?;
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled())))?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style));
    Ok(())
}

/// Draws with `draw` on a white canvas of [`SIZE`] and writes the PNG to `path`.
fn save(path: &Path, draw: impl FnOnce(&Area) -> Drawn) -> Result<(), Error> {
    register_font();
    let (width, height) = SIZE;
    let mut pixels = vec![255u8; (width * height * 3) as usize];
    let failed = |e: &dyn std::fmt::Display| Error::Model(format!("could not draw {}: {e}", path.display()));
    {
        let area = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
        area.fill(&WHITE).map_err(|e| failed(&e))?;
        draw(&area).map_err(|e| failed(&e))?;
        area.present().map_err(|e| failed(&e))?;
    }
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &pixels,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| failed(&e))?;
    std::fs::write(path, png).map_err(|e| Error::io("could not write", path, e))
}

/// ROC curves with the chance diagonal and the operating point (false positive rate, sensitivity).
pub fn roc(
    path: &Path,
    title: &str,
    curves: &[Curve],
    operating: Option<((f64, f64), String)>,
) -> Result<(), Error> {
    save(path, |area| {
        let mut chart = ChartBuilder::on(area)
            .caption(title, font(24))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(65)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.08))
            .x_desc("False positive rate (1 − specificity)")
            .y_desc("Sensitivity (true positive rate)")
            .label_style(font(16))
            .axis_desc_style(font(18))
            .draw()?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], GREY.mix(0.6).stroke_width(1)))?;
        let mut others = 0;
        // The positive class last, so it is drawn on top.
        let mut order: Vec<&Curve> = curves.iter().filter(|c| !c.emphasis).collect();
        order.extend(curves.iter().filter(|c| c.emphasis));
        for curve in order {
            let (colour, width) = if curve.emphasis {
                (EMPHASIS, 3)
            } else {
                others += 1;
                (PALETTE[(others - 1) % PALETTE.len()], 2)
            };
            let style = colour.stroke_width(width);
            chart
                .draw_series(LineSeries::new(curve.points.iter().copied(), style))?
                .label(&curve.label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style));
        }
        if let Some(((fpr, tpr), label)) = operating {
            let marker = BLACK.filled();
            chart
                .draw_series([Circle::new((fpr, tpr), 7, marker)])?
                .label(label)
                .legend(move |(x, y)| Circle::new((x + 12, y), 6, marker));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    })
}

/// Reliability diagram: per confidence bin, a bar to the accuracy with its count above, the mean
/// confidence as a point, and the diagonal of perfect calibration.
pub fn reliability(path: &Path, title: &str, bins: usize, rows: &[(f64, f64, usize)]) -> Result<(), Error> {
    save(path, |area| {
        let mut chart = ChartBuilder::on(area)
            .caption(title, font(24))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(65)
            .build_cartesian_2d(0f64..1f64, 0f64..1.1f64)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.08))
            .y_labels(12)
            .y_label_formatter(&|y| if *y <= 1.0 + 1e-9 { format!("{y:.1}") } else { String::new() })
            .x_desc("Confidence of the top class (calibrated)")
            .y_desc("Accuracy (fraction correct)")
            .label_style(font(16))
            .axis_desc_style(font(18))
            .draw()?;
        let width = 1.0 / bins as f64;
        for &(confidence, accuracy, count) in rows {
            let bin = ((confidence * bins as f64) as usize).min(bins - 1);
            let (lo, hi) = (bin as f64 * width, (bin + 1) as f64 * width);
            chart.draw_series([
                Rectangle::new([(lo, 0.0), (hi, accuracy)], BAR.mix(0.8).filled()),
                Rectangle::new([(lo, 0.0), (hi, accuracy)], DARK_BLUE.mix(0.6).stroke_width(1)),
            ])?;
            chart.draw_series([Text::new(
                count.to_string(),
                ((lo + hi) / 2.0, accuracy + 0.015),
                font(13).pos(Pos::new(HPos::Center, VPos::Bottom)),
            )])?;
        }
        let bars = BAR.mix(0.8).filled();
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
            .label("accuracy per bin (images in it above)")
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], bars));
        let diagonal = GREY.stroke_width(2);
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], diagonal))?
            .label("perfect calibration")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], diagonal));
        let points: Vec<(f64, f64)> = rows.iter().map(|r| (r.0, r.1)).collect();
        let line = EMPHASIS.stroke_width(2);
        chart.draw_series(LineSeries::new(points.iter().copied(), line))?;
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 5, EMPHASIS.filled())))?
            .label("mean confidence in the bin")
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, EMPHASIS.filled()));
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    })
}

/// Confusion matrix as a heat map: rows are the true class, columns the predicted one; each cell's
/// shade is its share of the row (so rare classes read as clearly as common ones), with the count
/// and that share written in it.
pub fn confusion(path: &Path, title: &str, classes: &[String], matrix: &[Vec<usize>]) -> Result<(), Error> {
    save(path, |area| {
        let k = classes.len() as i32;
        // One segment per class; the first class is the top row.
        let name = |v: &SegmentValue<i32>, flip: bool| match v {
            SegmentValue::Exact(i) | SegmentValue::CenterOf(i) => {
                let i = if flip { k - 1 - i } else { *i };
                usize::try_from(i).ok().and_then(|i| classes.get(i)).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        };
        let mut chart = ChartBuilder::on(area)
            .caption(title, font(24))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(110)
            .build_cartesian_2d((0..k - 1).into_segmented(), (0..k - 1).into_segmented())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(classes.len())
            .y_labels(classes.len())
            .x_label_formatter(&|x| name(x, false))
            .y_label_formatter(&|y| name(y, true))
            .x_desc("Decision of the model")
            .y_desc("True class")
            .label_style(font(17))
            .axis_desc_style(font(18))
            .draw()?;
        let (count_size, share_size, gap) = if k > 4 { (18, 12, 2) } else { (28, 17, 4) };
        for (i, row) in matrix.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            let y = k - 1 - i as i32;
            for (j, &count) in row.iter().enumerate() {
                let x = j as i32;
                let share = count as f64 / total;
                let shade = |full: u8| (255.0 + (full as f64 - 255.0) * share).round() as u8;
                let fill = RGBColor(shade(DARK_BLUE.0), shade(DARK_BLUE.1), shade(DARK_BLUE.2));
                let corners = [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ];
                chart.draw_series([
                    Rectangle::new(corners.clone(), fill.filled()),
                    Rectangle::new(corners, WHITE.stroke_width(2)),
                ])?;
                // Two lines of text about the cell's centre, placed in pixels.
                let (cx, cy) = chart.backend_coord(&(SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)));
                let ink = if share > 0.5 { WHITE } else { BLACK };
                let style =
                    |size: u32, v: VPos| (FONT, size).into_font().color(&ink).pos(Pos::new(HPos::Center, v));
                area.draw(&Text::new(count.to_string(), (cx, cy + gap), style(count_size, VPos::Bottom)))?;
                area.draw(&Text::new(
                    format!("{:.0} %", share * 100.0),
                    (cx, cy + gap + 2),
                    style(share_size, VPos::Top),
                ))?;
            }
        }
        Ok(())
    })
}

/// Training curves: losses per epoch above, validation AUC of the positive class below.
pub fn training(path: &Path, positive: &str, history: &[EpochLog]) -> Result<(), Error> {
    save(path, |area| {
        let (upper, lower) = area.split_vertically(SIZE.1 / 2);
        let last = history.iter().map(|h| h.epoch).max().unwrap_or(1).max(1) as i32;
        // One segment per epoch, its value at the centre.
        let epochs = || (1..last).into_segmented();
        let at = |epoch: usize| SegmentValue::CenterOf(epoch as i32);
        let whole = |x: &SegmentValue<i32>| match x {
            SegmentValue::Exact(e) | SegmentValue::CenterOf(e) => e.to_string(),
            SegmentValue::Last => String::new(),
        };
        let labels = (last as usize).min(20);

        let losses: Vec<f64> = history
            .iter()
            .flat_map(|h| [Some(h.train_loss), h.val_loss])
            .flatten()
            .filter(|v| v.is_finite())
            .collect();
        let top = losses.iter().copied().fold(0.0f64, f64::max).max(1e-3) * 1.1;
        let mut chart = ChartBuilder::on(&upper)
            .caption("Loss per epoch", font(22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(65)
            .build_cartesian_2d(epochs(), 0.0..top)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.08))
            .x_labels(labels)
            .x_label_formatter(&whole)
            .y_desc("Loss")
            .label_style(font(15))
            .axis_desc_style(font(17))
            .draw()?;
        let train: Vec<_> = history.iter().map(|h| (at(h.epoch), h.train_loss)).collect();
        let val: Vec<_> = history.iter().filter_map(|h| h.val_loss.map(|v| (at(h.epoch), v))).collect();
        for (points, colour, label) in [
            (train, PALETTE[0], "train loss (class-weighted, augmented images)"),
            (val, PALETTE[1], "validation loss (cross-entropy, before calibration)"),
        ] {
            if points.is_empty() {
                continue;
            }
            let style = colour.stroke_width(2);
            chart.draw_series(LineSeries::new(points.iter().cloned(), style))?;
            chart
                .draw_series(points.iter().map(|p| Circle::new(p.clone(), 4, colour.filled())))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .margin(10)
            .label_font(font(15))
            .background_style(WHITE.mix(0.92))
            .border_style(BLACK.mix(0.4))
            .draw()?;

        let aucs: Vec<_> = history.iter().filter_map(|h| h.val_auc.map(|a| (at(h.epoch), a))).collect();
        let low = aucs.iter().map(|a| a.1).fold(0.5f64, f64::min);
        let low = ((low - 0.02) * 20.0).floor().max(0.0) / 20.0;
        let mut chart = ChartBuilder::on(&lower)
            .caption(format!("Validation AUC of {positive} per epoch"), font(22))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(65)
            .build_cartesian_2d(epochs(), low..1.0)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.08))
            .x_labels(labels)
            .x_label_formatter(&whole)
            .x_desc("Epoch")
            .y_desc("AUC")
            .label_style(font(15))
            .axis_desc_style(font(17))
            .draw()?;
        let style = EMPHASIS.stroke_width(2);
        chart.draw_series(LineSeries::new(aucs.iter().cloned(), style))?;
        chart.draw_series(aucs.iter().map(|p| Circle::new(p.clone(), 4, EMPHASIS.filled())))?;
        Ok(())
    })
}

/// One point of a pruning curve as plotted: parameters and validation AUC (right after pruning,
/// fine-tuned fp32, int8), and whether it is the shipped point.
pub struct PrunePoint {
    pub params: usize,
    pub pruned: f64,
    pub fine_tuned: f64,
    pub int8: f64,
    pub shipped: bool,
}

/// Validation AUC against parameters, one line per stage of the pruning, the shipped point ringed.
pub fn pruning(path: &Path, title: &str, points: &[PrunePoint]) -> Result<(), Error> {
    save(path, |area| {
        let kilo = |p: &PrunePoint| p.params as f64 / 1000.0;
        let right = points.iter().map(kilo).fold(0.0, f64::max) * 1.08;
        let values = points.iter().flat_map(|p| [p.pruned, p.fine_tuned, p.int8]);
        let low = values.filter(|v| v.is_finite()).fold(1.0f64, f64::min);
        let bottom = ((low - 0.02).max(0.0) * 50.0).floor() / 50.0;
        let mut chart = ChartBuilder::on(area)
            .caption(title, font(24))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..right, bottom..1.0)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.08))
            .x_desc("Parameters (thousands)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("Validation AUC")
            .label_style(font(16))
            .axis_desc_style(font(18))
            .draw()?;
        let series = [
            (points.iter().map(|p| p.pruned).collect::<Vec<_>>(), GREY, "right after removing channels"),
            (points.iter().map(|p| p.fine_tuned).collect(), PALETTE[0], "fine-tuned (fp32)"),
            (points.iter().map(|p| p.int8).collect(), EMPHASIS, "fine-tuned, int8 (what ships)"),
        ];
        for (values, colour, label) in series {
            let line: Vec<(f64, f64)> = points.iter().zip(values).map(|(p, v)| (kilo(p), v)).collect();
            dotted_line(&mut chart, &line, colour, label)?;
        }
        if let Some(p) = points.iter().find(|p| p.shipped) {
            let ring = BLACK.stroke_width(2);
            chart
                .draw_series([Circle::new((kilo(p), p.int8), 9, ring)])?
                .label("shipped")
                .legend(move |(x, y)| Circle::new((x + 12, y), 6, ring));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    })
}

/// Risk–coverage: accuracy of the answered images against the share answered, one line per set of
/// predictions (`name`, points, the coverage the shipped review rule gives, marked).
pub fn risk_coverage(
    path: &Path,
    title: &str,
    curves: &[(&str, &[crate::review::CoveragePoint], f64)],
) -> Result<(), Error> {
    save(path, |area| {
        let low =
            curves.iter().flat_map(|(_, points, _)| points.iter().map(|p| p.accuracy)).fold(1.0f64, f64::min);
        let bottom = ((low - 0.02).max(0.0) * 50.0).floor() / 50.0;
        let mut chart = ChartBuilder::on(area)
            .caption(title, font(24))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(0.48f64..1.02f64, bottom..1.0)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.08))
            .x_desc("Share of images answered (the least certain left for review)")
            .x_label_formatter(&|x| format!("{:.0} %", 100.0 * x))
            .y_desc("Accuracy of the answered images")
            .label_style(font(16))
            .axis_desc_style(font(18))
            .draw()?;
        for (i, (name, points, shipped)) in curves.iter().enumerate() {
            let colour = if i == 0 { EMPHASIS } else { PALETTE[(i - 1) % PALETTE.len()] };
            let line: Vec<(f64, f64)> = points.iter().map(|p| (p.coverage, p.accuracy)).collect();
            dotted_line(&mut chart, &line, colour, name)?;
            let marker = BLACK.mix(0.6).stroke_width(1);
            chart.draw_series(LineSeries::new([(*shipped, bottom), (*shipped, 1.0)], marker))?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    })
}

/// Validation AUC (macro and of the positive class) against multiply–accumulates per diagnosis, on
/// a log scale, one labelled point per network, the shipped one ringed.
pub fn size_curve(
    path: &Path,
    title: &str,
    positive: &str,
    points: &[crate::sizes::SizePoint],
) -> Result<(), Error> {
    save(path, |area| {
        let mega = |p: &crate::sizes::SizePoint| p.macs_per_diagnosis() as f64 / 1e6;
        let (left, right) =
            points.iter().map(mega).fold((f64::MAX, 0.0f64), |(lo, hi), m| (lo.min(m), hi.max(m)));
        let (left, right) = (left.max(0.01) / 2.0, right.max(0.02) * 2.0);
        let low = points.iter().flat_map(|p| [p.auc, p.positive_auc]).fold(1.0f64, f64::min);
        let bottom = ((low - 0.05).max(0.0) * 20.0).floor() / 20.0;
        let mut chart = ChartBuilder::on(area)
            .caption(title, font(24))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d((left..right).log_scale(), bottom..1.0)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.08))
            .x_desc("Multiply–accumulates per diagnosis (millions, log scale)")
            // A log axis would otherwise label every hundred and run its numbers together.
            .x_labels(4)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("Validation AUC")
            .label_style(font(16))
            .axis_desc_style(font(18))
            .draw()?;
        let series = [
            (points.iter().map(|p| p.auc).collect::<Vec<_>>(), PALETTE[0], "macro AUC".to_string()),
            (points.iter().map(|p| p.positive_auc).collect(), EMPHASIS, format!("AUC of {positive}")),
        ];
        for (values, colour, label) in series {
            let dots: Vec<(f64, f64)> = points.iter().zip(values).map(|(p, v)| (mega(p), v)).collect();
            chart
                .draw_series(dots.iter().map(|&d| Circle::new(d, 6, colour.filled())))?
                .label(label)
                .legend(move |(x, y)| Circle::new((x + 12, y), 5, colour.filled()));
        }
        let ring = BLACK.stroke_width(2);
        chart.draw_series(
            points.iter().filter(|p| p.shipped).map(|p| Circle::new((mega(p), p.auc), 11, ring)),
        )?;
        let name_style = font(15).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series(points.iter().map(|p| {
            let name = format!("{} ({:.2} M parameters)", p.network, p.params as f64 / 1e6);
            Text::new(name, (mega(p), p.auc.max(p.positive_auc) + 0.012), name_style.clone())
        }))?;
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    })
}

//! Sharing for remote review: the open file de-identified ([`Draft`]), sealed with the diagnosis and
//! the clinician's note into a `bedside-share` bundle ([`Sealed`]), opened again on the reviewer's
//! side ([`open_share`]), and the reviewer's reply sealed and opened ([`seal_reply`],
//! [`open_reply`]). The rules are the library crates'; this only moves values across the boundary.

use bedside_imaging::deid::{self, Deidentifier};
use bedside_share::{Bundle, Diagnosis, HeatMap, Image, Model, Opinion, Reply, Secret};
use image::{ImageFormat, RgbaImage, imageops};
use js_sys::{Array, Object, Reflect, Uint8Array};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Cursor;
use wasm_bindgen::prelude::*;

/// The longer side of a shared heat map at most: it covers the whole image, so a 3000-pixel film
/// does not make a 3000-pixel map of a 224-pixel model output.
const HEAT_MAP_SIDE: u32 = 512;
/// A received heat map larger than this on either side is refused rather than decoded.
const MAX_HEAT_MAP_SIDE: u32 = 4096;

/// The open file de-identified for a share, before the clinician confirms it.
#[wasm_bindgen]
pub struct Draft {
    image: Image,
    risk: deid::BurnedInRisk,
}

/// The fields of an assessment (`bedside_diagnosis::Assessment` as the worker holds it) a bundle
/// keeps.
#[derive(Deserialize)]
struct Assessment {
    task: String,
    label: String,
    most_likely: String,
    probabilities: BTreeMap<String, f32>,
    threshold: Option<f32>,
    region: [u32; 4],
}

/// The fields of the answering model's summary (`Model::summary` plus the worker's `sha256`).
#[derive(Deserialize)]
struct ModelSummary {
    title: String,
    classes: Vec<String>,
    positive_class: String,
    format_version: u32,
    sha256: String,
}

#[wasm_bindgen]
impl Draft {
    /// De-identifies `bytes` (DICOM: the Basic Profile; a photo: its pixels as a bare PNG, at the
    /// size the page shows it, so the rectangles drawn over it and the heat map fit) with a fresh
    /// random secret, so no two shares map a UID alike. Throws one readable line.
    pub fn new(bytes: &[u8]) -> Result<Draft, JsError> {
        // The de-identification secret is not the share's: holders of the link cannot test guesses
        // of the original UIDs against the new ones.
        let secret = Secret::generate()?;
        let out = Deidentifier::with_limits(*secret.as_bytes(), bedside_imaging::Limits::page())
            .deidentify(bytes)?;
        let (media_type, name) = match out.format {
            deid::Format::Dicom => ("application/dicom", "image-1.dcm"),
            deid::Format::Png => ("image/png", "image-1.png"),
        };
        let image = Image { media_type: media_type.into(), name: name.into(), bytes: out.bytes };
        Ok(Draft { image, risk: out.summary.burned_in_risk })
    }

    /// `yes`, `unknown` or `no`: whether text may be burned into the pixels.
    #[wasm_bindgen(getter, js_name = burnedInRisk)]
    pub fn burned_in_risk(&self) -> String {
        match self.risk {
            deid::BurnedInRisk::Yes => "yes",
            deid::BurnedInRisk::Unknown => "unknown",
            deid::BurnedInRisk::No => "no",
        }
        .into()
    }

    /// Whether the clinician should look for burned-in text before sharing (the library's rule).
    #[wasm_bindgen(getter, js_name = burnedInWarning)]
    pub fn burned_in_warning(&self) -> bool {
        self.risk.warn()
    }

    /// Seals the de-identified image with its diagnosis and `note` into a new share. `assessment`
    /// and `summary` are the JSON of the diagnosed assessment and its model's summary as the worker
    /// holds them; `heat_rgba` (`heat_width` × `heat_height`, RGBA8) the heat map over the
    /// assessment's region of a `columns` × `rows` frame; `created` the time as the caller writes it.
    /// `black_out` holds the rectangles the clinician drew, four numbers each (`x, y, width, height`
    /// in image pixels as the viewer maps them, [`deid::Rect::drawn`]): each is blacked out in the
    /// de-identified image before it is sealed.
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        &self,
        assessment: &str,
        summary: &str,
        heat_rgba: &[u8],
        heat_width: u32,
        heat_height: u32,
        columns: u32,
        rows: u32,
        note: String,
        created: String,
        black_out: &[f64],
    ) -> Result<Sealed, JsError> {
        let (image, blacked_out) = self.blacked_out(black_out, columns, rows)?;
        let a: Assessment = serde_json::from_str(assessment)?;
        let s: ModelSummary = serde_json::from_str(summary)?;
        let heat = RgbaImage::from_raw(heat_width, heat_height, heat_rgba.to_vec())
            .ok_or_else(|| JsError::new("the heat map's size does not match its pixels"))?;
        let png = whole_image_heat_map(&heat, a.region, columns, rows)?;
        // In the model's class order, which the bundle keeps.
        let probabilities = s
            .classes
            .iter()
            .map(|c| a.probabilities.get(c).map(|p| (c.clone(), *p)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| JsError::new("the diagnosis does not give a probability for every class"))?;
        let diagnosis = Diagnosis {
            image: 0,
            task: a.task,
            model: Model { name: s.title, version: s.format_version.to_string(), sha256: s.sha256 },
            label: a.label,
            most_likely: a.most_likely,
            probabilities,
            thresholds: a.threshold.map(|t| vec![(s.positive_class, t)]).unwrap_or_default(),
            heat_map: Some(HeatMap::Png(png)),
        };
        let bundle = Bundle { created, images: vec![image], diagnoses: vec![diagnosis], note };
        let secret = Secret::generate()?;
        let ciphertext = bedside_share::seal_bundle(&secret, &bundle)?;
        Ok(Sealed {
            ciphertext,
            fragment: secret.to_fragment(),
            capability: secret.capability().to_base64url(),
            blacked_out,
        })
    }
}

impl Draft {
    /// The de-identified image with every drawn rectangle blacked out, and those rectangles as
    /// whole pixels (`x, y, width, height` each). The draft itself is kept as it is, so the
    /// clinician can draw again and seal anew.
    fn blacked_out(&self, drawn: &[f64], columns: u32, rows: u32) -> Result<(Image, Vec<u32>), JsError> {
        if !drawn.len().is_multiple_of(4) {
            return Err(JsError::new("each rectangle to black out needs four numbers: x, y, width, height"));
        }
        let mut image = self.image.clone();
        let mut applied = Vec::with_capacity(drawn.len());
        for corners in drawn.chunks_exact(4) {
            let rect = deid::Rect::drawn([corners[0], corners[1], corners[2], corners[3]], columns, rows)?;
            image.bytes = deid::black_out(&image.bytes, rect, &bedside_imaging::Limits::default())?;
            applied.extend([rect.x, rect.y, rect.width, rect.height]);
        }
        Ok((image, applied))
    }
}

/// A sealed share: what the relay stores and what only the link carries.
#[wasm_bindgen]
pub struct Sealed {
    ciphertext: Vec<u8>,
    fragment: String,
    capability: String,
    blacked_out: Vec<u32>,
}

#[wasm_bindgen]
impl Sealed {
    /// The envelope for the relay.
    #[wasm_bindgen(getter)]
    pub fn ciphertext(&self) -> Vec<u8> {
        self.ciphertext.clone()
    }

    /// `k=<secret>`, for the link's fragment only.
    #[wasm_bindgen(getter)]
    pub fn fragment(&self) -> String {
        self.fragment.trim_start_matches('#').to_owned()
    }

    /// The capability token a relay may ask for (`FORMAT.md`, "What the relay sees").
    #[wasm_bindgen(getter)]
    pub fn capability(&self) -> String {
        self.capability.clone()
    }

    /// The rectangles blacked out, as whole pixels clamped to the image: `x, y, width, height`
    /// each, in the order drawn.
    #[wasm_bindgen(getter, js_name = blackedOut)]
    pub fn blacked_out(&self) -> Vec<u32> {
        self.blacked_out.clone()
    }
}

/// The heat map stretched over `region` of a `columns` × `rows` frame, transparent elsewhere, as a
/// PNG whose longer side is at most [`HEAT_MAP_SIDE`]: the bundle's heat map covers the whole image.
fn whole_image_heat_map(
    heat: &RgbaImage,
    region: [u32; 4],
    columns: u32,
    rows: u32,
) -> Result<Vec<u8>, JsError> {
    let longer = columns.max(rows).max(1);
    let scale = (f64::from(HEAT_MAP_SIDE) / f64::from(longer)).min(1.0);
    let size = |v: u32| ((f64::from(v) * scale).round() as u32).max(1);
    let mut canvas = RgbaImage::new(size(columns), size(rows));
    let [x, y, width, height] = region;
    let stretched = imageops::resize(heat, size(width), size(height), imageops::FilterType::Triangle);
    let at = |v: u32| (f64::from(v) * scale).round() as i64;
    imageops::overlay(&mut canvas, &stretched, at(x), at(y));
    let mut png = Vec::new();
    // The PNG encoder named, not chosen by format at run time: that would link every encoder `image` has.
    canvas.write_with_encoder(image::codecs::png::PngEncoder::new(&mut png))?;
    Ok(png)
}

/// What the page shows of a received diagnosis (the bundle's, with the heat map as pixels).
#[derive(Serialize)]
struct ShownDiagnosis<'a> {
    image: usize,
    task: &'a str,
    model: &'a Model,
    label: &'a str,
    most_likely: &'a str,
    probabilities: &'a [(String, f32)],
    thresholds: &'a [(String, f32)],
}

/// Opens a share fetched from the relay with the link's fragment (`k=…`, other names ignored):
/// `{created, note, images: [{media_type, name, bytes}], diagnoses: [{image, task, model, label,
/// most_likely, probabilities, thresholds, heat_map: {width, height, rgba} | null}]}`, the bytes as
/// `Uint8Array`s. Throws "cannot decrypt this share" for a wrong key or changed bytes, and a line
/// naming the version for a newer format.
#[wasm_bindgen(js_name = openShare)]
pub fn open_share(fragment: &str, ciphertext: &[u8]) -> Result<JsValue, JsError> {
    let secret = Secret::from_fragment(fragment)?;
    let bundle = bedside_share::open_bundle(&secret, ciphertext)?;
    let out = Object::new();
    set(&out, "created", bundle.created.as_str().into())?;
    set(&out, "note", bundle.note.as_str().into())?;
    let images = Array::new();
    for image in &bundle.images {
        let entry = Object::new();
        set(&entry, "media_type", image.media_type.as_str().into())?;
        set(&entry, "name", image.name.as_str().into())?;
        set(&entry, "bytes", Uint8Array::from(image.bytes.as_slice()).into())?;
        images.push(&entry);
    }
    set(&out, "images", images.into())?;
    let diagnoses = Array::new();
    for d in &bundle.diagnoses {
        let shown = ShownDiagnosis {
            image: d.image,
            task: &d.task,
            model: &d.model,
            label: &d.label,
            most_likely: &d.most_likely,
            probabilities: &d.probabilities,
            thresholds: &d.thresholds,
        };
        let entry: Object = js_sys::JSON::parse(&serde_json::to_string(&shown)?)
            .map_err(|_| JsError::new("not valid JSON"))?
            .into();
        let heat_map = match &d.heat_map {
            Some(HeatMap::Png(png)) => pixels(png)?,
            Some(HeatMap::Grid { width, height, values }) => grid_pixels(*width, *height, values),
            None => None,
        };
        let heat_map = match heat_map {
            None => JsValue::NULL,
            Some(map) => {
                let layer = Object::new();
                set(&layer, "width", map.width().into())?;
                set(&layer, "height", map.height().into())?;
                set(&layer, "rgba", Uint8Array::from(map.as_raw().as_slice()).into())?;
                layer.into()
            }
        };
        set(&entry, "heat_map", heat_map)?;
        diagnoses.push(&entry);
    }
    set(&out, "diagnoses", diagnoses.into())?;
    Ok(out.into())
}

/// A PNG heat map's pixels, within [`MAX_HEAT_MAP_SIDE`].
fn pixels(png: &[u8]) -> Result<Option<RgbaImage>, JsError> {
    let mut reader = image::ImageReader::with_format(Cursor::new(png), ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_HEAT_MAP_SIDE);
    limits.max_image_height = Some(MAX_HEAT_MAP_SIDE);
    reader.limits(limits);
    let map =
        reader.decode().map_err(|e| JsError::new(&format!("the shared heat map cannot be read: {e}")))?;
    Ok(Some(map.into_rgba8()))
}

/// A grid heat map (values 0–1) as red with alpha rising with the value; a writer other than
/// Bedside's page may send one.
fn grid_pixels(width: u32, height: u32, values: &[f32]) -> Option<RgbaImage> {
    let rgba = values.iter().flat_map(|v| [255, 64, 0, (v.clamp(0.0, 1.0) * 200.0) as u8]).collect();
    RgbaImage::from_raw(width, height, rgba)
}

/// Seals a reply with the link's fragment; `opinion` is `agree`, `disagree`, `uncertain` or `none`.
#[wasm_bindgen(js_name = sealReply)]
pub fn seal_reply(fragment: &str, text: String, opinion: &str, created: String) -> Result<Vec<u8>, JsError> {
    let secret = Secret::from_fragment(fragment)?;
    let opinion: Opinion =
        serde_json::from_value(serde_json::Value::String(opinion.into())).map_err(|_| {
            JsError::new(&format!("unknown opinion {opinion:?}: agree, disagree, uncertain or none"))
        })?;
    Ok(bedside_share::seal_reply(&secret, &Reply { text, opinion, created })?)
}

/// Opens a reply fetched from the relay: `{text, opinion, created}`.
#[wasm_bindgen(js_name = openReply)]
pub fn open_reply(fragment: &str, bytes: &[u8]) -> Result<JsValue, JsError> {
    let secret = Secret::from_fragment(fragment)?;
    let reply = bedside_share::open_reply(&secret, bytes)?;
    let out = Object::new();
    set(&out, "text", reply.text.as_str().into())?;
    set(&out, "opinion", serde_json::to_value(reply.opinion)?.as_str().unwrap_or("none").into())?;
    set(&out, "created", reply.created.as_str().into())?;
    Ok(out.into())
}

fn set(obj: &Object, key: &str, value: JsValue) -> Result<(), JsError> {
    Reflect::set(obj, &key.into(), &value)
        .map(|_| ())
        .map_err(|_| JsError::new("could not build the share object"))
}

//! The model glue as the browser runs it: a freshly initialised student
//! goes through the artifact format, loads on the CPU path and assesses a decoded file the gate
//! routes to it. The
//! shipped models are exercised end to end in tests/e2e.

use bedside_model::artifact::{FORMAT_VERSION, ModelInfo, student_to_bytes};
use bedside_model::input::{Framing, InputSpec};
use bedside_model::student::StudentConfig;
use bedside_model::task::Task;
use bedside_web::{Model, Routing, Study};
use burn::prelude::Device;
use wasm_bindgen::convert::TryFromJsValue;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

use crate::decode::field;

/// A 64×48 grey PNG: a bright square on the left half of a dark background.
fn png() -> Vec<u8> {
    let img = image::GrayImage::from_fn(64, 48, |x, y| {
        image::Luma([if x < 32 && (8..40).contains(&y) { 220 } else { 30 }])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// A breast model: a freshly initialised student through the artifact format, on the CPU path.
async fn breast() -> Model {
    let network = StudentConfig::new(3);
    let mut student = network.init(&Device::flex());
    // All-positive head weights: every class's evidence map is positive somewhere (the features
    // are ReLU6 outputs), so the heat map has a peak to scale to 1 whatever class is predicted.
    student.classifier.weight = student.classifier.weight.map(|w| w.ones_like());
    let weights = student_to_bytes(student).unwrap();
    let info = ModelInfo {
        format_version: FORMAT_VERSION,
        task: Task::Breast,
        classes: Task::Breast.classes().iter().map(|c| c.to_string()).collect(),
        input: InputSpec {
            width: 64,
            height: 64,
            channels: 1,
            framing: Framing::CenterCrop,
            mean: vec![0.4],
            std: vec![0.2],
            intensity: Default::default(),
            mirror_average: false,
        },
        network,
        temperature: 1.5,
        threshold: None,
        review: None,
        heat_map: Default::default(),
        card: serde_json::Value::Null,
    };
    let json = serde_json::to_string(&info).unwrap();
    Model::load(json, weights, "cpu".into(), None, None).await.unwrap()
}

/// The gate's routing of frame 0 of `study` for `choice`.
async fn route(gate: &Model, study: &mut Study, choice: &str) -> Routing {
    let routing = JsFuture::from(gate.route(study, 0, choice.into()).unwrap()).await.unwrap();
    // A `Routing` handle, as wasm-bindgen hands it to the worker.
    Routing::try_from_js_value(routing).unwrap()
}

#[wasm_bindgen_test]
async fn a_model_loads_on_the_cpu_path_and_assesses_a_file_the_gate_routes_to_it() {
    let model = breast().await;
    assert_eq!(model.backend(), "cpu");
    assert_eq!(
        field(&model.summary().unwrap(), &["licence"]).as_string().unwrap(),
        "CC BY 4.0 (the article)"
    );
    JsFuture::from(model.warm_up()).await.unwrap();

    let mut study = Study::open(&png(), "square.png").unwrap();
    let routing = route(&gate([0.0, 0.0, 4.0, 0.0]).await, &mut study, "auto").await;
    assert_eq!(routing.task().as_deref(), Some("breast"));
    assert!(routing.refusal().unwrap().is_undefined());
    let result = JsFuture::from(model.assess(&mut study, 0, &routing).unwrap()).await.unwrap();
    let assessment = field(&result, &["assessment"]);
    assert_eq!(field(&assessment, &["outcome"]).as_string().as_deref(), Some("diagnosed"));
    assert_eq!(field(&assessment, &["task"]).as_string().as_deref(), Some("breast"));
    assert_eq!(field(&assessment, &["routed_by"]).as_string().as_deref(), Some("gate"));
    assert!(field(&assessment, &["note"]).is_null());
    assert_eq!(field(&assessment, &["gate", "task"]).as_string().as_deref(), Some("breast"));
    // Probabilities are class → p, in the model's class order, as `bedside predict` prints them.
    let probabilities = field(&assessment, &["probabilities"]);
    let classes: Vec<String> = js_sys::Object::keys(probabilities.unchecked_ref::<js_sys::Object>())
        .iter()
        .map(|k| k.as_string().unwrap())
        .collect();
    assert_eq!(classes, ["benign", "malignant", "normal"]);
    let total: f64 = classes.iter().map(|c| field(&probabilities, &[c]).as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-5, "probabilities sum to {total}");
    let label = field(&assessment, &["label"]).as_string().unwrap();
    assert!(classes.contains(&label), "{label}");
    // Breast frames are centre-cropped to a square: the middle 48×48 of the 64×48 picture.
    let numbers = |value: JsValue| -> Vec<f64> {
        js_sys::Array::from(&value).iter().map(|v| v.as_f64().unwrap()).collect()
    };
    assert_eq!(numbers(field(&assessment, &["region"])), vec![8.0, 0.0, 48.0, 48.0]);
    let peak = numbers(field(&assessment, &["heat_map_peak"]));
    assert!((8.0..56.0).contains(&peak[0]) && (0.0..48.0).contains(&peak[1]), "in the region: {peak:?}");
    let rgba = js_sys::Uint8Array::new(&field(&result, &["heat_map", "rgba"])).to_vec();
    assert_eq!(field(&result, &["heat_map", "width"]).as_f64(), Some(64.0));
    assert_eq!(rgba.len(), 64 * 64 * 4);
    assert_eq!(rgba.chunks(4).map(|p| p[3]).max(), Some(255), "the map is scaled so its peak is opaque");
    assert!(field(&result, &["outline"]).is_null(), "no lesion decoder");
    assert!(field(&assessment, &["lesion"]).is_null());

    // A routing to another model is not this model's to answer.
    let to_chest = route(&gate([4.0, 0.0, 0.0, 0.0]).await, &mut study, "auto").await;
    let err = model.assess(&mut study, 0, &to_chest).expect_err("the chest model answers");
    let message = String::from(js_sys::Error::from(JsValue::from(err)).message());
    assert_eq!(message, "the chest model answers this picture, not the breast model");
}

#[wasm_bindgen_test]
async fn weights_that_do_not_fit_are_a_readable_error() {
    let json = serde_json::to_string(&ModelInfo {
        format_version: FORMAT_VERSION,
        task: Task::Chest,
        classes: vec!["normal".into(), "pneumonia".into()],
        input: InputSpec {
            width: 32,
            height: 32,
            channels: 1,
            framing: Framing::Squash,
            mean: vec![0.5],
            std: vec![0.25],
            intensity: Default::default(),
            mirror_average: false,
        },
        network: StudentConfig::new(2),
        temperature: 1.0,
        threshold: Some(0.5),
        review: None,
        heat_map: Default::default(),
        card: serde_json::Value::Null,
    })
    .unwrap();
    let err =
        Model::load(json, vec![1, 2, 3], "cpu".into(), None, None).await.err().expect("garbage weights fail");
    let message = String::from(js_sys::Error::from(JsValue::from(err)).message());
    assert!(message.contains("weights"), "{message}");
}

/// A gate whose head ignores the picture: zero weights, so the calibrated probabilities are the
/// softmax of `bias`. Saved as int8 `model.bin`, as the gate ships.
async fn gate(bias: [f32; 4]) -> Model {
    let network = StudentConfig::new(4).with_in_channels(3).with_width(0.35).with_head_channels(64);
    let mut student = network.init(&Device::flex());
    student.classifier.weight = student.classifier.weight.map(|w| w.zeros_like());
    let bias = burn::tensor::Tensor::<1>::from_floats(bias, &Device::flex());
    student.classifier.bias = student.classifier.bias.map(|b| b.map(|_| bias.clone()));
    let fp32 = student_to_bytes(student).unwrap();
    let weights = bedside_model::quant::read_fp32(fp32).unwrap();
    let int8 = bedside_model::quant::to_int8(&weights, &Default::default()).unwrap();
    let info = ModelInfo {
        format_version: FORMAT_VERSION,
        task: Task::Gate,
        classes: Task::Gate.classes().iter().map(|c| c.to_string()).collect(),
        input: InputSpec {
            width: 64,
            height: 64,
            channels: 3,
            framing: Framing::Squash,
            mean: vec![0.5; 3],
            std: vec![0.25; 3],
            intensity: Default::default(),
            mirror_average: false,
        },
        network,
        temperature: 1.0,
        threshold: Some(0.6),
        review: None,
        heat_map: Default::default(),
        card: serde_json::Value::Null,
    };
    Model::load(serde_json::to_string(&info).unwrap(), int8, "cpu".into(), None, None).await.unwrap()
}

#[wasm_bindgen_test]
async fn the_gate_routes_or_refuses_with_a_message() {
    let mut study = Study::open(&png(), "square.png").unwrap();
    let chest_gate = gate([4.0, 0.0, 0.0, 0.0]).await;
    // A photo has no Modality: with "auto" the gate's route answers; a choice beats it, with a note.
    let routing = route(&chest_gate, &mut study, "auto").await;
    assert_eq!(routing.task().as_deref(), Some("chest"));
    assert!(routing.refusal().unwrap().is_undefined());
    let chosen = route(&chest_gate, &mut study, "breast").await;
    assert_eq!(chosen.task().as_deref(), Some("breast"));
    let result = JsFuture::from(breast().await.assess(&mut study, 0, &chosen).unwrap()).await.unwrap();
    let assessment = field(&result, &["assessment"]);
    assert_eq!(field(&assessment, &["routed_by"]).as_string().as_deref(), Some("choice"));
    let note = field(&assessment, &["note"]).as_string().unwrap();
    assert!(note.contains("looks more like a chest X-ray"), "{note}");
    let gate_verdict = field(&assessment, &["gate"]);
    assert_eq!(field(&gate_verdict, &["task"]).as_string().as_deref(), Some("chest"));
    assert_eq!(field(&gate_verdict, &["refused"]).as_bool(), Some(false));
    let confidence = field(&gate_verdict, &["confidence"]).as_f64().unwrap();
    let expected = 4f64.exp() / (4f64.exp() + 3.0);
    assert!((confidence - expected).abs() < 1e-3, "{confidence} vs {expected}");
    assert_eq!(field(&gate_verdict, &["probabilities", "chest"]).as_f64(), Some(confidence));
    assert!((field(&gate_verdict, &["floor"]).as_f64().unwrap() - 0.6).abs() < 1e-6);

    let routing = route(&gate([0.0, 0.0, 0.0, 4.0]).await, &mut study, "skin").await;
    assert_eq!(routing.task(), None, "a choice does not get round the gate");
    let refusal = routing.refusal().unwrap();
    assert_eq!(field(&refusal, &["outcome"]).as_string().as_deref(), Some("refused"));
    assert_eq!(field(&refusal, &["gate", "refused"]).as_bool(), Some(true));
    assert!(field(&refusal, &["gate", "task"]).is_null());
    let message = field(&refusal, &["message"]).as_string().unwrap();
    assert!(message.contains("does not look like a chest X-ray"), "{message}");
    let err = breast().await.assess(&mut study, 0, &routing).expect_err("refused");
    let message = String::from(js_sys::Error::from(JsValue::from(err)).message());
    assert_eq!(message, "the trust gate refused this picture");

    // Most probable task, but under the floor (0.6): refused too.
    let routing = route(&gate([1.0, 0.9, 0.0, 0.0]).await, &mut study, "auto").await;
    assert_eq!(routing.task(), None);
}

#[wasm_bindgen_test]
async fn a_model_json_that_does_not_fit_its_task_is_a_readable_error() {
    let mut info: serde_json::Value =
        serde_json::from_str(include_str!("../../../../models/chest/model.json")).unwrap();
    info["classes"] = serde_json::json!(["normal", "bacterial", "viral"]);
    // No weights and the WebGPU backend: model.json is refused before either is touched, so the
    // answer is its own message, not "no adapter" or a weights error.
    let err =
        Model::load(info.to_string(), Vec::new(), "webgpu".into(), None, None).await.err().expect("refused");
    let message = String::from(js_sys::Error::from(JsValue::from(err)).message());
    assert!(message.starts_with("model.json lists the classes"), "{message}");
    assert!(message.contains(r#"["normal", "pneumonia"]"#), "names what the chest model's are: {message}");
}

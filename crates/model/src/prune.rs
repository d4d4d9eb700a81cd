//! Structured pruning: a trained student with whole channels removed.
//!
//! Two kinds of channel can go without touching the rest of the network's shape: the expanded
//! (hidden) channels inside an inverted residual block — they feed only the block's own depthwise
//! convolution, squeeze-excitation and projection — and the head's channels, which feed only global
//! pooling and the classifier. Residual paths keep their width. Which channels to keep is the
//! caller's choice (`bedside-train` ranks them by their activity on training images); this module
//! only slices the weights, so a pruned network computes exactly what the kept channels computed
//! before, and the result is an ordinary [`Student`] whose [`StudentConfig`] records the new widths.

use crate::student::{ConvBn, Student, StudentConfig};
use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::Int;

/// The channels to keep, by index into the trained network's channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Keep {
    /// For each block, its hidden channels to keep (`None`: all; always `None` for the first block,
    /// which has no expansion).
    pub blocks: Vec<Option<Vec<usize>>>,
    /// The head channels to keep.
    pub head: Vec<usize>,
}

#[derive(Debug)]
pub struct PruneError(String);

impl std::fmt::Display for PruneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot prune: {}", self.0)
    }
}

impl std::error::Error for PruneError {}

/// `student` (built from `config`) with only the channels in `keep`, and the config that builds
/// the pruned shape. Works on folded and unfolded networks alike (BatchNorm statistics are sliced
/// with their channels).
pub fn prune(
    config: &StudentConfig,
    student: Student,
    keep: &Keep,
) -> Result<(StudentConfig, Student), PruneError> {
    let hidden = config.hidden_channels();
    let blocks = config.architecture().blocks();
    if keep.blocks.len() != blocks || student.blocks.len() != blocks {
        return Err(PruneError(format!(
            "expected {blocks} blocks, got {} in the plan and {} in the network",
            keep.blocks.len(),
            student.blocks.len()
        )));
    }
    if keep.blocks[0].is_some() {
        return Err(PruneError("the first block has no expansion to prune".into()));
    }
    let valid = |indices: &[usize], of: usize| {
        !indices.is_empty() && indices.windows(2).all(|w| w[0] < w[1]) && indices.iter().all(|&i| i < of)
    };
    let mut new_hidden = hidden.clone();
    for (b, kept) in keep.blocks.iter().enumerate() {
        if let Some(kept) = kept {
            if !valid(kept, hidden[b]) {
                return Err(PruneError(format!(
                    "block {b}: indices must be ascending and below {}",
                    hidden[b]
                )));
            }
            new_hidden[b] = kept.len();
        }
    }
    if !valid(&keep.head, config.head_channels) {
        return Err(PruneError(format!(
            "head: indices must be ascending and below {}",
            config.head_channels
        )));
    }

    let Student { stem, blocks, head, dropout, mut classifier } = student;
    let blocks = blocks
        .into_iter()
        .zip(&keep.blocks)
        .map(|(mut block, kept)| {
            let Some(kept) = kept else { return block };
            block.expand = block.expand.map(|c| select_out(c, kept));
            block.depthwise = select_out(block.depthwise, kept);
            block.depthwise.conv.groups = kept.len();
            if let Some(se) = block.se.as_mut() {
                // Linear weights are [inputs, outputs].
                se.reduce.weight = map(&se.reduce.weight, |w| take(w, 0, kept));
                se.expand = select_linear_out(se.expand.clone(), kept);
            }
            block.project.conv.weight = map(&block.project.conv.weight, |w| take(w, 1, kept));
            block
        })
        .collect();
    let head = select_out(head, &keep.head);
    classifier.weight = map(&classifier.weight, |w| take(w, 0, &keep.head));

    let pruned = StudentConfig { head_channels: keep.head.len(), hidden: Some(new_hidden), ..config.clone() };
    Ok((pruned, Student { stem, blocks, head, dropout, classifier }))
}

/// `t` with only the indices in `kept` along `dim`.
fn take<const D: usize>(t: Tensor<D>, dim: usize, kept: &[usize]) -> Tensor<D> {
    let data: Vec<i64> = kept.iter().map(|&i| i as i64).collect();
    let indices = Tensor::<1, Int>::from_data(TensorData::new(data, [kept.len()]), &t.device());
    t.select(dim, indices)
}

fn map<const D: usize>(param: &Param<Tensor<D>>, f: impl FnOnce(Tensor<D>) -> Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(f(param.val()))
}

/// A convolution (and its BatchNorm) with only the output channels in `kept`.
fn select_out(mut c: ConvBn, kept: &[usize]) -> ConvBn {
    let pick = |t: Tensor<1>| take(t, 0, kept);
    c.conv.weight = map(&c.conv.weight, |w| take(w, 0, kept));
    c.conv.bias = c.conv.bias.map(|b| map(&b, pick));
    if let Some(bn) = c.bn.as_mut() {
        bn.gamma = map(&bn.gamma, pick);
        bn.beta = map(&bn.beta, pick);
        bn.running_mean = burn::module::RunningState::new(pick(bn.running_mean.value()));
        bn.running_var = burn::module::RunningState::new(pick(bn.running_var.value()));
    }
    c
}

fn select_linear_out(mut l: Linear, kept: &[usize]) -> Linear {
    l.weight = map(&l.weight, |w| take(w, 1, kept));
    l.bias = l.bias.map(|b| map(&b, |t| take(t, 0, kept)));
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;

    fn image(device: &Device) -> Tensor<4> {
        let data: Vec<f32> = (0..2 * 64 * 64).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
        Tensor::from_data(TensorData::new(data, [2, 1, 64, 64]), device)
    }

    /// Every hidden channel of block 5 and every head channel zeroed beyond the kept ones:
    /// removing them must not change the output.
    #[test]
    fn removing_silent_channels_changes_nothing() {
        let device = Device::flex();
        let config = StudentConfig::new(2);
        let model = config.init(&device).fold_batchnorm().valid();
        let hidden = config.hidden_channels();
        let kept: Vec<usize> = (0..hidden[5]).step_by(2).collect();
        let head: Vec<usize> = (0..config.head_channels).filter(|c| c % 3 != 0).collect();
        // Silence the dropped channels: zero their projection inputs and classifier rows.
        let mut silenced = model.clone();
        let mask = |n: usize, keep: &[usize]| {
            let m: Vec<f32> = (0..n).map(|c| if keep.contains(&c) { 1.0 } else { 0.0 }).collect();
            Tensor::<1>::from_data(TensorData::new(m, [n]), &device)
        };
        let project = &mut silenced.blocks[5].project.conv;
        let m = mask(hidden[5], &kept).reshape([1, hidden[5], 1, 1]);
        project.weight = map(&project.weight, |w| w * m);
        let m = mask(config.head_channels, &head).reshape([config.head_channels, 1]);
        silenced.classifier.weight = map(&silenced.classifier.weight, |w| w * m);

        let mut keep = Keep { blocks: vec![None; config.architecture().blocks()], head: head.clone() };
        keep.blocks[5] = Some(kept.clone());
        let (pruned_config, pruned) = prune(&config, silenced.clone(), &keep).unwrap();
        assert_eq!(pruned_config.hidden.as_ref().unwrap()[5], kept.len());
        assert_eq!(pruned_config.head_channels, head.len());
        pruned_config.check().unwrap();

        let a = silenced.forward(image(&device)).into_data().try_to_vec::<f32>().unwrap();
        let b = pruned.forward(image(&device)).into_data().try_to_vec::<f32>().unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4, "{a:?} vs {b:?}");
        }
        assert!(pruned.num_params() < model.num_params());
        assert!(pruned.macs(64, 64) < model.macs(64, 64));
        // The pruned shape builds from its config alone, as loading model.json does.
        let rebuilt = pruned_config.init(&device).fold_batchnorm();
        assert_eq!(rebuilt.num_params(), pruned.num_params());
    }

    #[test]
    fn bad_indices_are_refused() {
        let device = Device::flex();
        let config = StudentConfig::new(2);
        let model = config.init(&device);
        let mut keep = Keep { blocks: vec![None; config.architecture().blocks()], head: vec![0, 0] };
        assert!(prune(&config, model.clone(), &keep).is_err(), "repeated head channel");
        keep.head = vec![0, 1];
        keep.blocks[0] = Some(vec![0]);
        assert!(prune(&config, model.clone(), &keep).is_err(), "first block");
        keep.blocks[0] = None;
        keep.blocks[3] = Some(vec![10_000]);
        assert!(prune(&config, model, &keep).is_err(), "out of range");
    }

    #[test]
    fn configs_with_impossible_widths_are_refused() {
        let mut config = StudentConfig::new(2);
        config.hidden = Some(vec![8; 3]);
        assert!(config.check().is_err());
        let mut full = StudentConfig::new(2).hidden_channels();
        full[4] += 1;
        config.hidden = Some(full);
        assert!(config.check().is_err());
        config.hidden = Some(StudentConfig::new(2).hidden_channels());
        config.check().unwrap();
    }
}

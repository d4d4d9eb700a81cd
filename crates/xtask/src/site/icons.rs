//! The app's icons, drawn here rather than committed or downloaded: a ring (the viewer's lens) in the
//! page's accent colour around a white cross, on the page's dark theme. Each is drawn with 4 × 4
//! samples a pixel so edges are smooth at every size.

use super::THEME;
use anyhow::{Context, Result};

/// One icon file.
pub struct Icon {
    pub file: &'static str,
    pub size: u32,
    /// The manifest's `purpose`; `None`: linked from the page only (the Apple touch icon).
    pub purpose: Option<&'static str>,
    /// Whether the background fills the square (maskable and Apple icons: the platform cuts the
    /// shape) or is a rounded square on transparency.
    full_bleed: bool,
    /// The symbol's size as a share of the icon's: a maskable icon keeps it in the central circle
    /// of 40 % radius that every mask shape leaves visible.
    scale: f32,
}

pub const ICONS: [Icon; 4] = [
    Icon { file: "icon-192.png", size: 192, purpose: Some("any"), full_bleed: false, scale: 1.0 },
    Icon { file: "icon-512.png", size: 512, purpose: Some("any"), full_bleed: false, scale: 1.0 },
    Icon {
        file: "icon-maskable-512.png",
        size: 512,
        purpose: Some("maskable"),
        full_bleed: true,
        scale: 0.75,
    },
    Icon { file: "apple-touch-icon.png", size: 180, purpose: None, full_bleed: true, scale: 0.85 },
];

const ACCENT: [u8; 3] = [0x6c, 0xb4, 0xff];
const WHITE: [u8; 3] = [0xe8, 0xea, 0xed];
const SAMPLES: u32 = 4;

/// The icon as a PNG file.
pub fn png(icon: &Icon) -> Result<Vec<u8>> {
    let rgba = draw(icon);
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, icon.size, icon.size);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("could not encode an icon")?;
    writer.write_image_data(&rgba).context("could not encode an icon")?;
    writer.finish().context("could not encode an icon")?;
    Ok(out)
}

fn draw(icon: &Icon) -> Vec<u8> {
    let n = icon.size;
    let mut rgba = Vec::with_capacity((n * n * 4) as usize);
    for y in 0..n {
        for x in 0..n {
            let (mut sum, mut alpha) = ([0f32; 3], 0f32);
            for sy in 0..SAMPLES {
                for sx in 0..SAMPLES {
                    // Centred coordinates in [-0.5, 0.5].
                    let u = (x as f32 + (sx as f32 + 0.5) / SAMPLES as f32) / n as f32 - 0.5;
                    let v = (y as f32 + (sy as f32 + 0.5) / SAMPLES as f32) / n as f32 - 0.5;
                    if let Some(colour) = sample(icon, u, v) {
                        for c in 0..3 {
                            sum[c] += f32::from(colour[c]);
                        }
                        alpha += 1.0;
                    }
                }
            }
            let covered = alpha.max(1.0);
            rgba.extend(sum.map(|s| (s / covered).round() as u8));
            rgba.push((255.0 * alpha / (SAMPLES * SAMPLES) as f32).round() as u8);
        }
    }
    rgba
}

/// The colour at centred coordinates (u, v), or `None` outside the icon's shape.
fn sample(icon: &Icon, u: f32, v: f32) -> Option<[u8; 3]> {
    if !icon.full_bleed && !in_rounded_square(u, v, 0.5, 0.11) {
        return None;
    }
    // The symbol's own coordinates: 1.0 is the icon's full width at scale 1.
    let (u, v) = (u / icon.scale, v / icon.scale);
    let r = (u * u + v * v).sqrt();
    if (0.27..=0.34).contains(&r) {
        return Some(ACCENT);
    }
    let (arm, half_width) = (0.17, 0.055);
    if (u.abs() <= half_width && v.abs() <= arm) || (v.abs() <= half_width && u.abs() <= arm) {
        return Some(WHITE);
    }
    Some(THEME)
}

/// Whether (u, v) lies in the square of half-side `half` centred on 0 with corners of `radius`.
fn in_rounded_square(u: f32, v: f32, half: f32, radius: f32) -> bool {
    let (du, dv) = ((u.abs() - (half - radius)).max(0.0), (v.abs() - (half - radius)).max(0.0));
    u.abs() <= half && v.abs() <= half && du * du + dv * dv <= radius * radius
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icons_have_their_size_and_shape() {
        for icon in &ICONS {
            let rgba = draw(icon);
            assert_eq!(rgba.len(), (icon.size * icon.size * 4) as usize);
            let at = |x: u32, y: u32| &rgba[((y * icon.size + x) * 4) as usize..][..4];
            // A maskable or Apple icon is opaque to its corners; the others are rounded.
            assert_eq!(at(0, 0)[3], if icon.full_bleed { 255 } else { 0 }, "{} corner", icon.file);
            let c = icon.size / 2;
            assert_eq!(at(c, c), [WHITE[0], WHITE[1], WHITE[2], 255], "{} centre is the cross", icon.file);
            let ring = (0.305 * icon.scale * icon.size as f32) as u32;
            assert_eq!(at(c + ring, c)[..3], ACCENT, "{} ring", icon.file);
            let bytes = png(icon).unwrap();
            assert_eq!(&bytes[1..4], b"PNG");
            assert_eq!(
                u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
                icon.size,
                "{} width",
                icon.file
            );
        }
        // The maskable icon's symbol stays inside the safe circle (radius 0.4).
        let maskable = &ICONS[2];
        assert!(0.34 * maskable.scale < 0.4);
    }
}

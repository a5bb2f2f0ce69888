// SPDX-License-Identifier: MIT OR Apache-2.0

//! Caps arithmetic: sizes on one pad from the other's at a scale, and a frame's duration.

use gst::glib;
use gst::prelude::*;
use gst_video::VideoInfo;

/// Multiplies (sink -> src) or divides (src -> sink) a width/height field by the scale.
pub(super) fn scale_field(
    value: &glib::SendValue,
    scale: i32,
    up: bool,
) -> Option<glib::SendValue> {
    if let Ok(v) = value.get::<i32>() {
        return if up {
            v.checked_mul(scale).map(|x| x.to_send_value())
        } else if v % scale == 0 {
            Some((v / scale).to_send_value())
        } else {
            None
        };
    }
    if let Ok(r) = value.get::<gst::IntRange<i32>>() {
        let (lo, hi) = (r.min(), r.max());
        return if up {
            let hi = hi.saturating_mul(scale) / scale * scale;
            let lo = lo.saturating_mul(scale).min(hi);
            Some(if lo == hi {
                lo.to_send_value()
            } else {
                gst::IntRange::with_step(lo, hi, scale).to_send_value()
            })
        } else {
            let lo = (lo + scale - 1) / scale;
            let hi = hi / scale;
            match lo.cmp(&hi) {
                std::cmp::Ordering::Less => Some(gst::IntRange::new(lo, hi).to_send_value()),
                std::cmp::Ordering::Equal => Some(lo.to_send_value()),
                std::cmp::Ordering::Greater => None,
            }
        };
    }
    if let Ok(list) = value.get::<gst::List>() {
        let items: Vec<glib::SendValue> = list
            .iter()
            .filter_map(|v| scale_field(v, scale, up))
            .collect();
        return if items.is_empty() {
            None
        } else {
            Some(gst::List::new(items).to_send_value())
        };
    }
    None
}

pub(super) fn frame_duration(info: &VideoInfo) -> Option<gst::ClockTime> {
    let f = info.fps();
    if f.numer() <= 0 {
        return None;
    }
    gst::ClockTime::SECOND.mul_div_floor(f.denom() as u64, f.numer() as u64)
}

/// `caps` with width and height multiplied by `scale` (`up`, sink to src) or divided by it
/// (src to sink; sizes that are no multiple of it are left out, and a structure left without
/// a size with them).
pub(super) fn scaled(caps: &gst::Caps, scale: i32, up: bool) -> gst::Caps {
    let mut out = gst::Caps::new_empty();
    {
        let out = out.get_mut().expect("new caps are writable");
        for (s, features) in caps.iter_with_features() {
            let mut s = s.to_owned();
            let mut ok = true;
            for field in ["width", "height"] {
                if let Some(v) = s.value(field).ok().cloned() {
                    match scale_field(&v, scale, up) {
                        Some(nv) => s.set_value(field, nv),
                        None => ok = false,
                    }
                }
            }
            if ok {
                out.append_structure_full(s, Some(features.to_owned()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> gst::Caps {
        gst::init().unwrap();
        s.parse().unwrap()
    }

    #[test]
    fn fixed_sizes_scale_up_and_down_and_odd_ones_have_no_input() {
        let up = scaled(
            &parse("video/x-raw, width=(int)320, height=(int)240"),
            4,
            true,
        );
        assert_eq!(up, parse("video/x-raw, width=(int)1280, height=(int)960"));
        let down = scaled(&up, 4, false);
        assert_eq!(down, parse("video/x-raw, width=(int)320, height=(int)240"));
        assert!(
            scaled(
                &parse("video/x-raw, width=(int)1281, height=(int)960"),
                4,
                false
            )
            .is_empty()
        );
    }

    #[test]
    fn ranges_and_lists_keep_what_the_scale_allows() {
        let up = scaled(
            &parse("video/x-raw, width=(int)[1, 100], height=(int){10, 20}"),
            2,
            true,
        );
        let s = up.structure(0).unwrap();
        let w = s.get::<gst::IntRange<i32>>("width").unwrap();
        assert_eq!((w.min(), w.max(), w.step()), (2, 200, 2));
        let h: Vec<i32> = s
            .get::<gst::List>("height")
            .unwrap()
            .iter()
            .map(|v| v.get::<i32>().unwrap())
            .collect();
        assert_eq!(h, [20, 40]);
        let down = scaled(
            &parse("video/x-raw, width=(int)[3, 9], height=(int)[4, 5]"),
            4,
            false,
        );
        let s = down.structure(0).unwrap();
        assert_eq!(s.get::<gst::IntRange<i32>>("width").unwrap().max(), 2);
        assert_eq!(s.get::<i32>("height").unwrap(), 1);
        // no multiple of 4 in [5, 7]: nothing upstream can give
        assert!(scaled(&parse("video/x-raw, width=(int)[5, 7]"), 4, false).is_empty());
    }

    #[test]
    fn a_frame_lasts_one_over_the_frame_rate_and_variable_rates_have_none() {
        gst::init().unwrap();
        let info = |n, d| {
            VideoInfo::builder(gst_video::VideoFormat::Rgb, 8, 8)
                .fps(gst::Fraction::new(n, d))
                .build()
                .unwrap()
        };
        assert_eq!(
            frame_duration(&info(25, 1)),
            Some(gst::ClockTime::from_mseconds(40))
        );
        assert_eq!(
            frame_duration(&info(30000, 1001)),
            Some(gst::ClockTime::from_nseconds(33_366_666))
        );
        assert_eq!(frame_duration(&info(0, 1)), None);
    }
}

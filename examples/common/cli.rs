// SPDX-License-Identifier: MIT OR Apache-2.0
//! What every example program does with its command line: `-h`/`--help` prints the usage and
//! exits 0; a mistake prints `error: ...` with the usage and exits 2; nothing panics.
// each example uses the part it needs
#![allow(dead_code)]

/// Prints `usage` and exits 0 when `-h` or `--help` is among the arguments.
pub fn help(usage: &str) {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{}", usage.trim_end());
        std::process::exit(0);
    }
}

/// A command-line mistake: says what, shows the usage, exits 2.
pub fn usage_error(usage: &str, msg: impl std::fmt::Display) -> ! {
    eprintln!("error: {msg}\n{}", usage.trim_end());
    std::process::exit(2)
}

/// Any other failure: `error: ...`, exit 1.
pub fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}

/// `--flag VALUE` pairs in order, or which flag lacks its value.
pub fn pairs() -> Result<Vec<(String, String)>, String> {
    let mut it = std::env::args().skip(1);
    let mut out = vec![];
    while let Some(k) = it.next() {
        if !k.starts_with("--") {
            return Err(format!("unexpected argument {k:?}"));
        }
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        out.push((k, v));
    }
    Ok(out)
}

/// A number for `flag`, or what was wrong with it.
pub fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: not a number: {v:?}"))
}

/// Checks that `value` names one of the enum property `prop` of the `mstgansr` element (its
/// nicks, as `gst-inspect-1.0 mstgansr` lists them) before it is set: glib would abort the process
/// on an unknown one.
pub fn check_enum(prop: &str, value: &str) -> Result<(), String> {
    use gst::glib;
    use gst::prelude::*;
    let factory =
        gst::ElementFactory::find("mstgansr").ok_or("the mstgansr element is not registered")?;
    let el = factory.create().build().map_err(|e| e.to_string())?;
    let pspec = el
        .find_property(prop)
        .ok_or(format!("mstgansr has no property {prop}"))?;
    let class =
        glib::EnumClass::with_type(pspec.value_type()).ok_or(format!("{prop} is not an enum"))?;
    if class.value_by_nick(value).is_some() {
        return Ok(());
    }
    let nicks: Vec<&str> = class.values().iter().map(|v| v.nick()).collect();
    Err(format!(
        "{prop} must be one of {}, not {value:?}",
        nicks.join(", ")
    ))
}

/// Starts a `mstgansr` with these properties on its own (loading its model) and stops it again:
/// a mistake in them (a missing model, a provider this machine lacks) comes back in the element's
/// own words before any pipeline runs. `scale` must already be in range.
pub fn preflight(props: &[(&str, &str)]) -> Result<(), String> {
    use gst::prelude::*;
    for (k, v) in props {
        if matches!(
            *k,
            "execution-provider" | "variant" | "precision" | "late-frames"
        ) {
            check_enum(k, v)?;
        }
    }
    let el = gst::ElementFactory::make("mstgansr")
        .build()
        .map_err(|e| e.to_string())?;
    for (k, v) in props {
        el.set_property_from_str(k, v);
    }
    let pipeline = gst::Pipeline::new();
    pipeline.add(&el).map_err(|e| e.to_string())?;
    let started = pipeline.set_state(gst::State::Paused);
    let bus = pipeline.bus().ok_or("pipeline without a bus")?;
    let error = bus.pop_filtered(&[gst::MessageType::Error]);
    let _ = pipeline.set_state(gst::State::Null);
    match (started, error) {
        (Ok(_), None) => Ok(()),
        (_, Some(m)) => match m.view() {
            // the debug text opens with the source location; its last line is the detail
            gst::MessageView::Error(e) => Err(format!(
                "mstgansr: {}{}",
                e.error(),
                e.debug()
                    .and_then(|d| d.lines().last().map(|l| format!(" ({})", l.trim())))
                    .unwrap_or_default()
            )),
            _ => unreachable!("filtered for errors"),
        },
        (Err(e), None) => Err(format!("mstgansr could not start: {e}")),
    }
}

//! One entry of a list, binary or ASCII, normalised to the binary template-data layout; and
//! the detection of a list's format and algorithm.

use super::*;

pub(super) fn parse_binary_entry<'a>(
    rest: &'a [u8],
    offset: usize,
    index: usize,
    alg: HashAlg,
    be: bool,
) -> Result<(ImaEntry<'a>, usize), ImaError> {
    let mut r = Reader::with_base(rest, offset);
    let t = |field: &'static str| {
        move |s: Short| ImaError::Truncated {
            index,
            offset,
            field,
            at: s.offset,
            need: s.need,
            have: s.have,
        }
    };
    let inval = |field: &'static str, reason: String| ImaError::Invalid {
        index,
        offset,
        field,
        reason,
    };
    let pcr = read_u32(&mut r, be).map_err(t("pcr"))?;
    let th = r.take(alg.size() as u64).map_err(t("template hash"))?;
    let name_len = read_u32(&mut r, be).map_err(t("template name length"))?;
    if name_len == 0 || name_len > MAX_TEMPLATE_NAME {
        return Err(inval(
            "template name length",
            format!("{name_len} (allowed 1..={MAX_TEMPLATE_NAME})"),
        ));
    }
    let name_raw = r.take(u64::from(name_len)).map_err(t("template name"))?;
    let template_name = core::str::from_utf8(name_raw)
        .ok()
        .filter(|s| s.bytes().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| inval("template name", String::from("not printable ASCII")))?;
    let template = Template::from_name(template_name);
    let data_start = r.offset() - offset;
    let data: &'a [u8] = if template_name == "ima" {
        r.take(20).map_err(t("d"))?;
        let n = read_u32(&mut r, be).map_err(t("n length"))?;
        if n as usize >= LEGACY_NAME_PAD {
            return Err(inval(
                "n length",
                format!("{n} (the ima template allows at most 255)"),
            ));
        }
        r.take(u64::from(n)).map_err(t("n"))?;
        rest.get(data_start..r.offset() - offset).unwrap_or(&[])
    } else {
        let n = read_u32(&mut r, be).map_err(t("template data length"))?;
        r.take(u64::from(n)).map_err(t("template data"))?
    };
    if let Some(tpl) = &template {
        walk_fields(tpl, data, be, |_, _| {}).map_err(|reason| inval("template data", reason))?;
    }
    let template_hash = Digest::from_slice(th).unwrap_or(Digest::zero(0));
    let used = r.offset() - offset;
    Ok((
        ImaEntry {
            index,
            offset,
            len: used,
            pcr,
            template_hash,
            template_name,
            template,
            data: Cow::Borrowed(data),
            big_endian: be,
        },
        used,
    ))
}

pub(super) fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", b.len()));
    }
    let mut out = Vec::with_capacity(b.len() / 2);
    for (i, p) in b.chunks_exact(2).enumerate() {
        let v = |c: u8| (c as char).to_digit(16);
        match (v(p[0]), v(p[1])) {
            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
            _ => return Err(format!("not a hex digit at character {}", i * 2)),
        }
    }
    Ok(out)
}

pub(super) fn push_field(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Encode one ASCII field value into its binary bytes (without the length prefix).
pub(super) fn encode_ascii_field(f: Field, v: &str) -> Result<Vec<u8>, String> {
    if v.is_empty() {
        return Ok(Vec::new());
    }
    Ok(match f.format() {
        FieldFormat::Digest | FieldFormat::Hex => hex_decode(v)?,
        FieldFormat::DigestWithAlgo => {
            let (prefix, hex) = v
                .rsplit_once(':')
                .ok_or_else(|| String::from("no algorithm prefix"))?;
            let mut out = Vec::with_capacity(prefix.len() + 2 + hex.len() / 2);
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(b":\0");
            out.extend_from_slice(&hex_decode(hex)?);
            out
        }
        FieldFormat::String => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
            out
        }
        FieldFormat::Uint(size) => {
            let n: u64 = v
                .parse()
                .map_err(|_| format!("not a decimal number: {v:?}"))?;
            let bytes = n.to_le_bytes();
            if bytes
                .get(size..)
                .is_some_and(|hi| hi.iter().any(|&b| b != 0))
            {
                return Err(format!("{n} does not fit {size} bytes"));
            }
            bytes.get(..size).unwrap_or(&[]).to_vec()
        }
    })
}

pub(super) fn parse_ascii_line<'a>(
    line: &'a [u8],
    offset: usize,
    used: usize,
    lineno: usize,
    index: usize,
    alg: HashAlg,
) -> Result<ImaEntry<'a>, ImaError> {
    let err = |field: &'static str, reason: String| ImaError::Line {
        line: lineno,
        index,
        field,
        reason,
    };
    let text = core::str::from_utf8(line)
        .map_err(|e| err("line", format!("not UTF-8 at column {}", e.valid_up_to())))?;
    let mut head = text.splitn(4, ' ');
    let pcr_s = head.next().unwrap_or("");
    let hash_s = head
        .next()
        .ok_or_else(|| err("template hash", String::from("missing")))?;
    let template_name = head
        .next()
        .ok_or_else(|| err("template name", String::from("missing")))?;
    let rest = head.next().unwrap_or("");
    let pcr: u32 = pcr_s
        .parse()
        .map_err(|_| err("pcr", format!("not a decimal number: {pcr_s:?}")))?;
    let th = hex_decode(hash_s).map_err(|r| err("template hash", r))?;
    if th.len() != alg.size() {
        return Err(err(
            "template hash",
            format!(
                "{} bytes, the list uses {} ({} bytes)",
                th.len(),
                alg,
                alg.size()
            ),
        ));
    }
    let template_hash = Digest::from_slice(&th).unwrap_or(Digest::zero(0));
    let template = Template::from_name(template_name).ok_or_else(|| {
        err(
            "template name",
            format!("unknown template {template_name:?}"),
        )
    })?;
    let fields = template.fields();
    let mut values: Vec<&str> = rest.split(' ').collect();
    if values.len() < fields.len() {
        return Err(err(
            "template data",
            format!(
                "{} fields, template {template_name} has {}",
                values.len(),
                fields.len()
            ),
        ));
    }
    // Old kernels print names with spaces as is: fold the surplus into the first string field.
    if values.len() > fields.len() {
        let surplus = values.len() - fields.len();
        let Some(si) = fields
            .iter()
            .position(|f| f.format() == FieldFormat::String)
        else {
            return Err(err(
                "template data",
                format!(
                    "{} fields, template {template_name} has {}",
                    values.len(),
                    fields.len()
                ),
            ));
        };
        let start = values[..si].iter().map(|v| v.len() + 1).sum::<usize>();
        let len = values[si..=si + surplus]
            .iter()
            .map(|v| v.len() + 1)
            .sum::<usize>()
            - 1;
        let joined = rest.get(start..start + len).unwrap_or("");
        values.splice(si..=si + surplus, [joined]);
    }
    let mut data = Vec::with_capacity(line.len());
    if template.is_legacy() {
        let d = encode_ascii_field(Field::D, values[0]).map_err(|r| err("d", r))?;
        if d.len() != 20 {
            return Err(err("d", format!("{} bytes, must be 20", d.len())));
        }
        if values[1].len() >= LEGACY_NAME_PAD {
            return Err(err(
                "n",
                format!(
                    "{} bytes (the ima template allows at most 255)",
                    values[1].len()
                ),
            ));
        }
        data.extend_from_slice(&d);
        push_field(&mut data, values[1].as_bytes());
    } else {
        for (&f, v) in fields.iter().zip(&values) {
            let b = encode_ascii_field(f, v).map_err(|r| err(f.id(), r))?;
            push_field(&mut data, &b);
        }
    }
    Ok(ImaEntry {
        index,
        offset,
        len: used,
        pcr,
        template_hash,
        template_name,
        template: Some(template),
        data: Cow::Owned(data),
        big_endian: false,
    })
}

pub(super) fn alg_for_size(n: usize) -> Option<HashAlg> {
    match n {
        20 => Some(HashAlg::Sha1),
        32 => Some(HashAlg::Sha256),
        48 => Some(HashAlg::Sha384),
        64 => Some(HashAlg::Sha512),
        _ => None,
    }
}

/// Work out the encoding and template-hash algorithm of a list.
pub fn detect(data: &[u8], opts: ParseOptions) -> Result<(ImaFormat, HashAlg), ImaError> {
    if data.iter().all(|c| c.is_ascii_whitespace()) {
        return Err(ImaError::Empty);
    }
    // An ASCII list starts with the decimal PCR and a space; a binary one with a u32 PCR, whose
    // bytes are never all digits for a real PCR index.
    let first_sp = data.iter().take(12).position(|&c| c == b' ');
    if let Some(p) = first_sp
        && p > 0
        && data
            .get(..p)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    {
        let line = data.split(|&c| c == b'\n').next().unwrap_or(&[]);
        let hash_len = line
            .split(|&c| c == b' ')
            .nth(1)
            .map(|h| h.len() / 2)
            .unwrap_or(0);
        let alg = match opts.template_alg {
            Some(a) if a.size() == hash_len => a,
            Some(a) => {
                return Err(ImaError::WrongAlgorithm {
                    alg: a.name(),
                    reason: format!("the first template hash has {hash_len} bytes"),
                });
            }
            None => {
                let a = alg_for_size(hash_len).ok_or_else(|| {
                    ImaError::UnknownFormat(format!(
                        "line 1: template hash of {hash_len} bytes fits no algorithm"
                    ))
                })?;
                prefer_verifying(data, ImaFormat::Ascii, a)
            }
        };
        return Ok((ImaFormat::Ascii, alg));
    }
    let pcr_le = data
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let pcr_be = data
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let format = match (pcr_le, pcr_be) {
        (Some(le), _) if le < 64 => ImaFormat::BinaryLe,
        (_, Some(be)) if be < 64 => ImaFormat::BinaryBe,
        (None, _) => {
            return Err(ImaError::Truncated {
                index: 0,
                offset: 0,
                field: "pcr",
                at: 0,
                need: 4,
                have: data.len(),
            });
        }
        _ => {
            return Err(ImaError::UnknownFormat(String::from(
                "byte 0: neither a decimal PCR (ASCII) nor a PCR index below 64 (binary)",
            )));
        }
    };
    let be = format == ImaFormat::BinaryBe;
    if let Some(a) = opts.template_alg {
        return match parse_binary_entry(data, 0, 0, a, be) {
            Ok(_) => Ok((format, a)),
            Err(e) => Err(ImaError::WrongAlgorithm {
                alg: a.name(),
                reason: format!("{e}"),
            }),
        };
    }
    let mut first_err = None;
    let mut structural = None;
    for size in [20usize, 32, 48, 64] {
        let Some(a) = alg_for_size(size) else {
            continue;
        };
        match parse_binary_entry(data, 0, 0, a, be) {
            Ok((e, _)) => {
                let a = prefer_verifying(data, format, a);
                if e.is_violation() || e.template_hash_in(a) == e.template_hash {
                    return Ok((format, a));
                }
                structural.get_or_insert(a);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match (structural, first_err) {
        (Some(a), _) => Ok((format, a)),
        (None, Some(e)) => Err(e),
        (None, None) => Err(ImaError::Empty),
    }
}

/// Between sha256 and sm3 (both 32 bytes), the one that verifies the first non-violation entry.
pub(super) fn prefer_verifying(data: &[u8], format: ImaFormat, a: HashAlg) -> HashAlg {
    if a != HashAlg::Sha256 {
        return a;
    }
    for e in ImaParser::with_format(data, format, a).take(16) {
        let Ok(e) = e else { break };
        if e.is_violation() {
            continue;
        }
        if e.template_hash_in(a) != e.template_hash
            && e.template_hash_in(HashAlg::Sm3) == e.template_hash
        {
            return HashAlg::Sm3;
        }
        break;
    }
    a
}

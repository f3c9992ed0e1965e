//! Property-based tests of everything that parses peer or file input: the frame decoder,
//! every message type in both encodings, the UDP probe and announce, and the state-file loaders. Random bytes,
//! truncations, huge lengths, deep or odd JSON and wrong field types must give an error or a
//! clean close: never a panic, a hang, or an allocation beyond the frame limit.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use csc_shared::compact;
use csc_shared::connection::{Encoding, Wire};
use csc_shared::discovery::wire::{
    PROBE_LEN, encode_announce, encode_probe, parse_announce, parse_probe,
};
use csc_shared::frame::{FrameError, FramedStream};
use csc_shared::identity::PeerId;
use csc_shared::message::{Message, OutputStream, Payload, TaskErrorBody};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Records the largest single allocation, to show a declared length is never allocated.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

const MAX: usize = 4096;

/// Decode everything in `bytes` as frames; returns the frames and how it ended.
fn decode(bytes: &[u8]) -> (Vec<usize>, Result<(), String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let data = bytes.to_vec();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = a.write_all(&data).await;
        });
        let mut f = FramedStream::new(b, MAX);
        let mut sizes = Vec::new();
        let end = loop {
            match tokio::time::timeout(std::time::Duration::from_secs(5), f.read()).await {
                Err(_) => break Err("hang".to_string()),
                Ok(Ok(Some(frame))) => sizes.push(frame.len()),
                Ok(Ok(None)) => break Ok(()),
                Ok(Err(e)) => break Err(e.to_string()),
            }
        };
        let _ = writer.await;
        (sizes, end)
    })
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn frame_decoder_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..20_000)) {
        let (sizes, end) = decode(&bytes);
        prop_assert!(end.as_ref().map_or_else(|e| e != "hang", |_| true), "hung");
        prop_assert!(sizes.iter().all(|&s| s <= MAX));
    }

    #[test]
    fn valid_frames_round_trip_and_truncations_are_errors(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..MAX), 1..5),
        cut in any::<prop::sample::Index>(),
    ) {
        let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
        let (sizes, end) = decode(&stream);
        prop_assert_eq!(sizes, payloads.iter().map(Vec::len).collect::<Vec<_>>());
        prop_assert!(end.is_ok());
        // Cut the stream anywhere inside: a partial frame at the end is an error, not a frame.
        let at = cut.index(stream.len());
        let (sizes, end) = decode(&stream[..at]);
        prop_assert!(sizes.len() <= payloads.len());
        if end.is_ok() {
            // Only a cut exactly between frames closes cleanly.
            let boundary: usize = payloads.iter().take(sizes.len()).map(|p| p.len() + 4).sum();
            prop_assert_eq!(at, boundary);
        }
    }

    #[test]
    fn huge_declared_lengths_are_refused_without_allocating_them(len in (MAX as u32 + 1)..=u32::MAX) {
        let (sizes, end) = decode(&len.to_be_bytes());
        prop_assert!(sizes.is_empty());
        prop_assert!(end.unwrap_err().contains("exceeds"));
        // No allocation anywhere in this test process ever reached 64 MiB, although declared
        // lengths go up to 4 GiB (nothing else here allocates more than a few KiB at once).
        let largest = LARGEST.load(Ordering::Relaxed);
        prop_assert!(largest < 64 << 20, "an allocation of {largest} bytes");
    }

    #[test]
    fn messages_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = serde_json::from_slice::<Message>(&bytes);
    }

    #[test]
    fn messages_never_panic_on_random_json(v in json_value()) {
        let _ = serde_json::from_value::<Message>(v.clone());
        let _ = serde_json::from_slice::<Message>(v.to_string().as_bytes());
    }

    #[test]
    fn every_message_type_with_wrong_field_types_is_an_error_or_valid(
        kind in prop::sample::select(MESSAGE_TYPES.to_vec()),
        fields in proptest::collection::btree_map("[a-z_]{1,16}", json_value(), 0..6),
        known in proptest::collection::btree_map(prop::sample::select(FIELD_NAMES.to_vec()), json_value(), 0..6),
    ) {
        let mut obj = serde_json::Map::new();
        obj.insert("type".into(), json!(kind));
        for (k, v) in fields.into_iter().chain(known.into_iter().map(|(k, v)| (k.to_string(), v))) {
            if k != "type" {
                obj.insert(k, v);
            }
        }
        if let Ok(m) = serde_json::from_value::<Message>(Value::Object(obj)) {
            // Whatever decoded must encode again and decode to the same value.
            let text = serde_json::to_string(&m).unwrap();
            prop_assert_eq!(serde_json::from_str::<Message>(&text).unwrap(), m);
        }
    }

    #[test]
    fn every_hot_message_round_trips_in_both_encodings(m in hot_message()) {
        for encoding in [Encoding::Compact, Encoding::Json] {
            let mut buf = BytesMut::new();
            m.encode(&mut buf, encoding).unwrap();
            prop_assert_eq!(compact::is_compact(&buf), encoding == Encoding::Compact);
            prop_assert_eq!(&Message::decode(buf).unwrap(), &m);
        }
    }

    #[test]
    fn compact_frames_never_panic_on_random_bytes(
        tag in 0u8..=0x20,
        body in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        let mut frame = vec![tag];
        frame.extend_from_slice(&body);
        if let Ok(m) = Message::decode(BytesMut::from(&frame[..])) {
            // What was accepted is a message like any other: it encodes and decodes the same.
            let mut again = BytesMut::new();
            m.encode(&mut again, Encoding::Compact).unwrap();
            prop_assert_eq!(Message::decode(again).unwrap(), m);
        }
    }

    #[test]
    fn truncated_and_mutated_compact_frames_are_errors_or_messages(
        m in hot_message(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut buf = BytesMut::new();
        m.encode(&mut buf, Encoding::Compact).unwrap();
        let at = cut.index(buf.len());
        let mut bytes = buf[..at].to_vec();
        for (i, b) in &flips {
            if !bytes.is_empty() {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
        }
        let _ = Message::decode(BytesMut::from(&bytes[..]));
        // A cut inside the fixed fields of a request or an acknowledgement is always an error.
        if matches!(m, Message::RunAck { .. } | Message::RunInputAck { .. }) && at < buf.len() && flips.is_empty() {
            prop_assert!(Message::decode(BytesMut::from(&buf[..at])).is_err());
        }
    }

    #[test]
    fn huge_declared_compact_lengths_are_refused_without_allocating_them(
        argc in 1u32..=u32::MAX,
        arg_len in 1u32..=u32::MAX,
        task_len in 1u16..=u16::MAX,
    ) {
        // Each declared length is larger than the frame that carries it.
        let mut b = BytesMut::new();
        b.put_u8(compact::TAG_REQUEST);
        b.put_u64(1);
        b.put_u16(0);
        b.put_u32(argc);
        prop_assert!(Message::decode(b).is_err() || argc == 0);
        let mut b = BytesMut::new();
        b.put_u8(compact::TAG_REQUEST);
        b.put_u64(1);
        b.put_u16(0);
        b.put_u32(1);
        b.put_u32(arg_len);
        prop_assert!(Message::decode(b).is_err());
        let mut b = BytesMut::new();
        b.put_u8(compact::TAG_REQUEST);
        b.put_u64(1);
        b.put_u16(task_len);
        prop_assert!(Message::decode(b).is_err());
        let largest = LARGEST.load(Ordering::Relaxed);
        prop_assert!(largest < 64 << 20, "an allocation of {largest} bytes");
    }

    #[test]
    fn udp_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let _ = parse_probe(&bytes);
        let _ = parse_announce(&bytes);
    }

    #[test]
    fn mutated_probes_and_announces_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut p = encode_probe("abc");
        let mut a = encode_announce(PeerId([1; 32]), "srv", 47474, "abc", PROBE_LEN).unwrap();
        for (i, b) in &flips {
            let ip = i.index(p.len());
            p[ip] = *b;
            let ia = i.index(a.len());
            a[ia] = *b;
        }
        let _ = parse_probe(&p);
        let _ = parse_announce(&a);
    }

    #[test]
    fn an_announce_is_never_larger_than_its_probe(name in ".{0,300}", nonce in "[0-9a-f]{0,32}", probe_len in 0usize..2000) {
        if let Some(a) = encode_announce(PeerId([9; 32]), &name, 47474, &nonce, probe_len) {
            prop_assert!(a.len() <= probe_len);
            prop_assert!(parse_announce(&a).is_some());
        }
    }

    #[test]
    fn state_loaders_reject_garbage_without_panicking_or_touching_the_file(
        bytes in proptest::collection::vec(any::<u8>(), 0..3000),
        v in json_value(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for content in [bytes.clone(), v.to_string().into_bytes()] {
            std::fs::write(dir.path().join("clients.json"), &content).unwrap();
            std::fs::write(dir.path().join("servers.json"), &content).unwrap();
            let _ = csc_shared::state::ServerStore::read_clients(dir.path());
            let store = csc_shared::state::ClientStore::open(dir.path()).unwrap();
            let _ = store.load();
            prop_assert_eq!(std::fs::read(dir.path().join("clients.json")).unwrap(), content.clone());
            prop_assert_eq!(std::fs::read(dir.path().join("servers.json")).unwrap(), content);
        }
    }
}

const MESSAGE_TYPES: &[&str] = &[
    "pair_request",
    "pair_attempt",
    "pair_confirm",
    "auth",
    "hello",
    "server_info",
    "pair_challenge",
    "pair_pake",
    "pair_failed",
    "paired",
    "auth_ok",
    "request",
    "response",
    "notice",
    "unpair",
    "unpaired",
    "error",
    "something_else",
];

const FIELD_NAMES: &[&str] = &[
    "client_name",
    "pake",
    "mac",
    "token",
    "server_name",
    "protocol",
    "code_digits",
    "expires_in_s",
    "attempts_left",
    "reason",
    "retry_after_ms",
    "token_expires_at",
    "id",
    "task",
    "args",
    "ok",
    "result",
    "error",
    "text",
    "at_ms",
    "code",
    "message",
];

/// Any message the compact encoding carries, with any values.
fn hot_message() -> impl Strategy<Value = Message> {
    let text = || ".{0,40}";
    let bytes =
        || proptest::collection::vec(any::<u8>(), 0..3000).prop_map(|v| Payload(Bytes::from(v)));
    prop_oneof![
        (
            any::<u64>(),
            text(),
            proptest::collection::vec(text(), 0..6)
        )
            .prop_map(|(id, task, args)| Message::Request { id, task, args }),
        (any::<u64>(), json_value()).prop_map(|(id, result)| Message::Response {
            id,
            ok: true,
            result,
            error: None,
        }),
        (any::<u64>(), text(), text()).prop_map(|(id, code, message)| Message::Response {
            id,
            ok: false,
            result: Value::Null,
            error: Some(TaskErrorBody { code, message }),
        }),
        (text(), any::<u64>()).prop_map(|(text, at_ms)| Message::Notice { text, at_ms }),
        (any::<u64>(), any::<bool>(), bytes()).prop_map(|(id, err, data)| Message::RunOutput {
            id,
            stream: if err {
                OutputStream::Stderr
            } else {
                OutputStream::Stdout
            },
            data,
        }),
        (any::<u64>(), bytes()).prop_map(|(id, data)| Message::RunInput { id, data }),
        (any::<u64>(), any::<u64>()).prop_map(|(id, bytes)| Message::RunAck { id, bytes }),
        (any::<u64>(), any::<u64>()).prop_map(|(id, bytes)| Message::RunInputAck { id, bytes }),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        "[A-Za-z0-9_-]{0,60}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn messages_without_a_compact_form_go_as_json_in_a_compact_session() {
    for m in [
        Message::Ping {},
        Message::Auth { token: "t".into() },
        Message::RunCancel { id: 3 },
        Message::Response {
            id: 1,
            ok: false,
            result: Value::Null,
            error: None,
        },
    ] {
        let mut buf = BytesMut::new();
        m.encode(&mut buf, Encoding::Compact).unwrap();
        assert_eq!(buf[0], b'{', "{} goes as JSON", m.kind());
        assert_eq!(Message::decode(buf).unwrap(), m);
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    for depth in [200usize, 10_000, 100_000] {
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(serde_json::from_str::<Message>(&text).is_err());
        let text = format!(
            "{{\"type\":\"request\",\"id\":1,\"task\":\"x\",\"args\":{}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(serde_json::from_str::<Message>(&text).is_err());
    }
}

#[test]
fn the_frame_limit_itself_is_exact() {
    let (sizes, end) = decode(&frame(&vec![0u8; MAX]));
    assert_eq!(sizes, vec![MAX]);
    assert!(end.is_ok());
    let (sizes, end) = decode(&frame(&vec![0u8; MAX + 1]));
    assert!(sizes.is_empty());
    assert!(matches!(end, Err(e) if e.contains("exceeds")));
    let _ = FrameError::Truncated;
}

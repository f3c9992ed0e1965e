//! The harness at tiny size against the real `server-tui` binary, so it never rots: every
//! phase runs, every reply is checked by the harness itself, and the counts must add up.
//! No timing is asserted.

mod common;

use common::server_bin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_run_against_the_real_server() {
    let mut opts = bench::Options::tiny(server_bin());
    opts.verbose = true;
    let report = bench::run(&opts).await.expect("the tiny run completes");

    let pairings = opts.reps * (opts.pairings + opts.pairing_workers * opts.pairings_per_worker);
    assert_eq!(report.pairing.latency.samples, opts.reps * opts.pairings);
    assert_eq!(report.pairing.per_sec.reps, opts.reps);
    assert!(pairings >= opts.identities);

    let reconnect = report.reconnect.as_ref().expect("reconnects ran");
    assert_eq!(reconnect.latency.samples, opts.reps * opts.reconnects);
    assert_eq!(reconnect.per_sec.reps, opts.reps);

    let tasks = report.tasks.as_ref().expect("tasks ran");
    assert_eq!(tasks.suite, tasks.base_suite);
    assert_eq!(tasks.echo.len(), opts.echo.len());
    for (e, plan) in tasks.echo.iter().zip(&opts.echo) {
        assert_eq!(e.size, plan.size);
        for samples in [e.rtt.samples, e.base_rtt.samples, e.raw_rtt.samples] {
            assert_eq!(samples, opts.reps * plan.rtt_requests);
        }
        for reps in [e.rate.reps, e.base_rate.reps, e.raw_rate.reps] {
            assert_eq!(reps, opts.reps);
        }
    }
    assert_eq!(tasks.ping.samples, opts.reps * opts.pings);

    let streams = report.streams.as_ref().expect("streams ran");
    assert_eq!(streams.cat_bytes, opts.stream_bytes);
    assert_eq!(streams.out_bytes, opts.stream_out_bytes);
    for s in [
        &streams.cat,
        &streams.base_cat,
        &streams.out,
        &streams.base_out,
    ] {
        assert_eq!(s.reps, opts.reps);
        assert!(s.min > 0.0, "{s:?}");
    }
    assert_eq!(streams.spawn.samples, opts.reps * opts.spawns);
    assert_eq!(streams.spawn_started.samples, opts.reps * opts.spawns);

    let agent = report.agent.as_ref().expect("the agent phase ran");
    assert_eq!(agent.agent.samples, opts.reps * opts.agent_requests);
    assert_eq!(agent.link.samples, opts.reps * opts.agent_requests);
    match (&agent.send_agent, &agent.send_direct) {
        (Some(via), Some(direct)) => {
            assert_eq!(via.samples, opts.reps * opts.agent_sends);
            assert_eq!(direct.samples, opts.reps * opts.agent_sends);
        }
        _ => assert!(agent.send_skipped.is_some()),
    }

    assert_eq!(report.many.len(), 1);
    let m = &report.many[0];
    assert_eq!(m.n, 50);
    assert!(m.skipped.is_none(), "{:?}", m.skipped);
    assert_eq!(m.identities, opts.identities);
    assert_eq!(m.recipients, vec![50; opts.notices]);
    assert_eq!(m.ping.samples, opts.pings_under_load);
    assert!(m.rss_after_kib > 0);
    assert!(
        report.server_warnings.is_empty(),
        "{:?}",
        report.server_warnings
    );

    // The report renders every row.
    let table = report.markdown();
    assert!(table.contains("pairing, request → stored token"));
    assert!(table.contains("50 clients: notice to all"));
    assert!(table.contains("`send cat`"));
    assert!(table.contains("one run of /bin/true"));
    assert!(table.contains("ping through the agent"));
}

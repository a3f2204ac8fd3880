//! Checks across sections: `needs` (unknown, cycles), images and secret groups that steps and
//! jobs refer to, `attach` sources.

use drydock_diagnostics::Diagnostic;

use crate::model::{Attach, Pipeline, StepKind};
use crate::suggest::did_you_mean;

pub(crate) fn check(p: &Pipeline, diags: &mut Vec<Diagnostic>) {
    let job_names: Vec<&str> = p.jobs.iter().map(|j| j.name.value.as_str()).collect();
    let image_names: Vec<&str> = p.images.iter().map(|i| i.name.value.as_str()).collect();
    let group_names: Vec<&str> = p.secrets.iter().map(|g| g.name.value.as_str()).collect();
    let unknown = |what: &str, name: &str, candidates: &[&str], span, section: &str| {
        let mut d = Diagnostic::error(format!("unknown {what} `{name}`"), span)
            .with_code(format!("unknown-{}", what.replace(' ', "-")))
            .with_label(format!("not defined in `{section}`"));
        if let Some(s) = did_you_mean(name, candidates) {
            d = d.with_hint(format!("did you mean `{s}`?"));
        } else if candidates.is_empty() {
            d = d.with_hint(format!("`{section}` defines none"));
        } else {
            d = d.with_hint(format!("defined: {}", candidates.join(", ")));
        }
        d
    };
    for j in &p.jobs {
        let mut seen: Vec<&str> = Vec::new();
        for n in &j.needs {
            if n.value == j.name.value {
                diags.push(
                    Diagnostic::error(format!("job `{}` needs itself", n.value), n.span)
                        .with_code("cyclic-needs"),
                );
            } else if !job_names.contains(&n.value.as_str()) {
                diags.push(unknown("job", &n.value, &job_names, n.span, "jobs"));
            } else if seen.contains(&n.value.as_str()) {
                diags.push(
                    Diagnostic::error(format!("`{}` is listed twice in needs", n.value), n.span)
                        .with_code("duplicate"),
                );
            }
            seen.push(&n.value);
        }
        for g in &j.secrets {
            match p.secret_group(&g.value) {
                None => diags.push(unknown(
                    "secret group",
                    &g.value,
                    &group_names,
                    g.span,
                    "secrets",
                )),
                Some(group) => {
                    if let Some(allowed) = &group.allow.jobs
                        && !allowed.iter().any(|a| a.value == j.name.value)
                    {
                        diags.push(
                            Diagnostic::error(
                                format!(
                                    "secret group `{}` does not allow job `{}`",
                                    g.value, j.name.value
                                ),
                                g.span,
                            )
                            .with_code("secret-not-allowed")
                            .with_secondary(group.name.span, "its `allow.jobs` is here"),
                        );
                    }
                }
            }
        }
        let upstream = upstream(p, &j.name.value);
        let mut ids: Vec<(&str, drydock_diagnostics::Span)> = Vec::new();
        for s in &j.steps {
            if let Some(id) = &s.id {
                if let Some((_, first)) = ids.iter().find(|(i, _)| *i == id.value) {
                    diags.push(
                        Diagnostic::error(format!("step id `{}` is used twice", id.value), id.span)
                            .with_code("duplicate")
                            .with_secondary(*first, "first here"),
                    );
                }
                ids.push((&id.value, id.span));
            }
            match &s.kind {
                StepKind::Build(i) | StepKind::Push(i) => match p.image(&i.value) {
                    None => diags.push(unknown("image", &i.value, &image_names, i.span, "images")),
                    Some(img) => {
                        if matches!(s.kind, StepKind::Push(_)) && img.repositories.is_empty() {
                            diags.push(
                                Diagnostic::error(format!("image `{}` has no repositories to push to", i.value), i.span)
                                    .with_code("no-repositories")
                                    .with_secondary(img.name.span, "defined here")
                                    .with_hint(format!("add `repositories: [registry.example.com/acme/{}]` to images.{}", i.value, i.value)),
                            );
                        }
                    }
                },
                StepKind::Attach(Attach::All) => {
                    if j.needs.is_empty() {
                        diags.push(
                            Diagnostic::error(
                                "`attach` restores files of needed jobs, but this job needs none",
                                s.span,
                            )
                            .with_code("attach-without-needs")
                            .with_hint("add `needs: [<job that persists the files>]`"),
                        );
                    }
                }
                StepKind::Attach(Attach::Jobs(names)) => {
                    for n in names {
                        if !job_names.contains(&n.value.as_str()) {
                            diags.push(unknown("job", &n.value, &job_names, n.span, "jobs"));
                        } else if !upstream.contains(&n.value.as_str()) {
                            diags.push(
                                Diagnostic::error(
                                    format!(
                                        "job `{}` attaches files of `{}`, which it does not need",
                                        j.name.value, n.value
                                    ),
                                    n.span,
                                )
                                .with_code("attach-not-needed")
                                .with_hint(format!("add `{}` to `needs`", n.value)),
                            );
                        } else if p.job(&n.value).is_some_and(|o| o.persist.is_empty()) {
                            diags.push(
                                Diagnostic::error(
                                    format!("job `{}` persists nothing to attach", n.value),
                                    n.span,
                                )
                                .with_code("attach-nothing")
                                .with_hint(format!("add `persist: [path/]` to job `{}`", n.value)),
                            );
                        }
                    }
                }
                StepKind::Run(_) => {}
            }
        }
    }
    for g in &p.secrets {
        if let Some(jobs) = &g.allow.jobs {
            for n in jobs {
                if !job_names.contains(&n.value.as_str()) {
                    diags.push(unknown("job", &n.value, &job_names, n.span, "jobs"));
                }
            }
        }
    }
    cycles(p, diags);
}

/// Every job `name` needs, transitively.
fn upstream<'a>(p: &'a Pipeline, name: &str) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    let mut todo: Vec<&str> = p
        .job(name)
        .map(|j| j.needs.iter().map(|n| n.value.as_str()).collect())
        .unwrap_or_default();
    while let Some(n) = todo.pop() {
        if out.contains(&n) {
            continue;
        }
        out.push(n);
        if let Some(j) = p.job(n) {
            todo.extend(j.needs.iter().map(|x| x.value.as_str()));
        }
    }
    out
}

fn cycles(p: &Pipeline, diags: &mut Vec<Diagnostic>) {
    // 0 = unvisited, 1 = on the stack, 2 = done
    let mut state = vec![0u8; p.jobs.len()];
    let index = |name: &str| p.jobs.iter().position(|j| j.name.value == name);
    let mut reported: Vec<Vec<usize>> = Vec::new();
    for start in 0..p.jobs.len() {
        if state[start] != 0 {
            continue;
        }
        // iterative DFS: (job, next need index)
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (j, ref mut next)) = stack.last_mut() {
            let needs = &p.jobs[j].needs;
            if *next >= needs.len() {
                state[j] = 2;
                stack.pop();
                continue;
            }
            let need = &needs[*next];
            *next += 1;
            let Some(k) = index(&need.value) else {
                continue;
            };
            if k == j {
                continue; // reported as "needs itself"
            }
            match state[k] {
                0 => {
                    state[k] = 1;
                    stack.push((k, 0));
                }
                1 => {
                    let pos = stack.iter().position(|(x, _)| *x == k).unwrap_or(0);
                    let mut cycle: Vec<usize> = stack[pos..].iter().map(|(x, _)| *x).collect();
                    let mut key = cycle.clone();
                    key.sort_unstable();
                    if reported.contains(&key) {
                        continue;
                    }
                    reported.push(key);
                    cycle.push(k);
                    let path: Vec<&str> = cycle
                        .iter()
                        .map(|x| p.jobs[*x].name.value.as_str())
                        .collect();
                    let mut d = Diagnostic::error(
                        format!("`needs` form a cycle: {}", path.join(" → ")),
                        need.span,
                    )
                    .with_code("cyclic-needs")
                    .with_label("this need closes the cycle");
                    for w in cycle.windows(2).take(cycle.len().saturating_sub(2)) {
                        if let Some(n) = p.jobs[w[0]]
                            .needs
                            .iter()
                            .find(|n| n.value == p.jobs[w[1]].name.value)
                        {
                            d = d.with_secondary(
                                n.span,
                                format!("`{}` needs `{}`", p.jobs[w[0]].name.value, n.value),
                            );
                        }
                    }
                    diags.push(d.with_hint("remove one of these needs"));
                }
                _ => {}
            }
        }
    }
}

//! The job graph: checks (unknown needs, cycles), `--job NAME` selection, and the order
//! questions the scheduler asks. Pure.

use std::collections::{BTreeSet, HashMap};

use crate::plan::Pipeline;

/// The graph of a pipeline's jobs, by index in `pipeline.jobs`.
#[derive(Debug, Clone)]
pub struct Graph {
    pub names: Vec<String>,
    /// `needs[i]`: indices of the jobs job `i` needs.
    pub needs: Vec<Vec<usize>>,
}

impl Graph {
    /// Builds the graph; unknown needs and cycles are errors naming the jobs.
    pub fn new(pipeline: &Pipeline) -> Result<Self, String> {
        let index: HashMap<&str, usize> = pipeline
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.name.as_str(), i))
            .collect();
        if index.len() != pipeline.jobs.len() {
            return Err("two jobs have the same name".to_string());
        }
        let mut needs = Vec::new();
        for j in &pipeline.jobs {
            let mut n = Vec::new();
            for need in &j.needs {
                match index.get(need.as_str()) {
                    Some(&i) => n.push(i),
                    None => {
                        return Err(format!(
                            "job {} needs {need}, which is not a job of this pipeline",
                            j.name
                        ));
                    }
                }
            }
            needs.push(n);
        }
        let g = Graph {
            names: pipeline.jobs.iter().map(|j| j.name.clone()).collect(),
            needs,
        };
        if let Some(cycle) = g.cycle() {
            return Err(format!("jobs form a cycle: {}", cycle.join(" -> ")));
        }
        Ok(g)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    fn cycle(&self) -> Option<Vec<String>> {
        // 0 = new, 1 = on the stack, 2 = done.
        let mut state = vec![0u8; self.len()];
        let mut path = Vec::new();
        fn visit(
            g: &Graph,
            i: usize,
            state: &mut [u8],
            path: &mut Vec<usize>,
        ) -> Option<Vec<String>> {
            state[i] = 1;
            path.push(i);
            for &n in &g.needs[i] {
                if state[n] == 1 {
                    let start = path.iter().position(|&p| p == n).unwrap_or(0);
                    let mut c: Vec<String> =
                        path[start..].iter().map(|&p| g.names[p].clone()).collect();
                    c.push(g.names[n].clone());
                    return Some(c);
                }
                if state[n] == 0
                    && let Some(c) = visit(g, n, state, path)
                {
                    return Some(c);
                }
            }
            path.pop();
            state[i] = 2;
            None
        }
        for i in 0..self.len() {
            if state[i] == 0
                && let Some(c) = visit(self, i, &mut state, &mut path)
            {
                return Some(c);
            }
        }
        None
    }

    /// Job `i` and everything it needs, transitively.
    pub fn closure(&self, i: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![i];
        while let Some(j) = stack.pop() {
            if seen.insert(j) {
                stack.extend(self.needs[j].iter().copied());
            }
        }
        seen
    }

    /// What `--job NAME` runs: the job and what it needs. `None`: every job.
    pub fn select(&self, only: Option<&str>) -> Result<BTreeSet<usize>, String> {
        match only {
            None => Ok((0..self.len()).collect()),
            Some(name) => match self.index(name) {
                Some(i) => Ok(self.closure(i)),
                None => Err(format!(
                    "no job named {name} (jobs: {})",
                    self.names.join(", ")
                )),
            },
        }
    }

    /// The jobs job `i` needs transitively, in a topological order (needed first), without
    /// `i` itself.
    pub fn ancestors_in_order(&self, i: usize) -> Vec<usize> {
        let set = self.closure(i);
        let mut out = Vec::new();
        let mut done = BTreeSet::new();
        fn visit(
            g: &Graph,
            j: usize,
            set: &BTreeSet<usize>,
            done: &mut BTreeSet<usize>,
            out: &mut Vec<usize>,
        ) {
            if !done.insert(j) {
                return;
            }
            for &n in &g.needs[j] {
                if set.contains(&n) {
                    visit(g, n, set, done, out);
                }
            }
            out.push(j);
        }
        visit(self, i, &set, &mut done, &mut out);
        out.pop();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Job;

    fn pipeline(jobs: &[(&str, &[&str])]) -> Pipeline {
        Pipeline {
            jobs: jobs
                .iter()
                .map(|(n, needs)| Job {
                    name: n.to_string(),
                    needs: needs.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn selects_a_job_and_what_it_needs() {
        let p = pipeline(&[
            ("lint", &[]),
            ("test", &[]),
            ("build", &["test"]),
            ("deploy", &["build", "lint"]),
            ("docs", &[]),
        ]);
        let g = Graph::new(&p).unwrap();
        let sel = g.select(Some("deploy")).unwrap();
        let names: Vec<&str> = sel.iter().map(|&i| g.names[i].as_str()).collect();
        assert_eq!(names, ["lint", "test", "build", "deploy"]);
        let order: Vec<&str> = g
            .ancestors_in_order(3)
            .iter()
            .map(|&i| g.names[i].as_str())
            .collect();
        assert_eq!(order, ["test", "build", "lint"]);
        assert!(
            g.select(Some("nope"))
                .unwrap_err()
                .contains("no job named nope")
        );
    }

    #[test]
    fn unknown_needs_and_cycles_are_errors() {
        let err = Graph::new(&pipeline(&[("a", &["b"])])).unwrap_err();
        assert!(err.contains("job a needs b"), "{err}");
        let err =
            Graph::new(&pipeline(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"])])).unwrap_err();
        assert!(err.contains("cycle: a -> c -> b -> a"), "{err}");
    }
}

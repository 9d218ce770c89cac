//! Cursor pagination over ULID-ordered lists, as MAS's admin API pages them.

use ulid::Ulid;

/// Which end of the list a page is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaginationDirection {
    /// The first `count` items after `after` (oldest first).
    Forward,
    /// The last `count` items before `before`.
    Backward,
}

/// A page request: `first`/`after` or `last`/`before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pagination {
    /// Only items with a greater ID.
    pub after: Option<Ulid>,
    /// Only items with a smaller ID.
    pub before: Option<Ulid>,
    /// How many items at most.
    pub count: usize,
    /// Which end to take them from.
    pub direction: PaginationDirection,
}

impl Pagination {
    /// The first `count` items.
    #[must_use]
    pub fn first(count: usize) -> Self {
        Self {
            after: None,
            before: None,
            count,
            direction: PaginationDirection::Forward,
        }
    }

    /// The last `count` items.
    #[must_use]
    pub fn last(count: usize) -> Self {
        Self {
            after: None,
            before: None,
            count,
            direction: PaginationDirection::Backward,
        }
    }

    /// Only items after `id`.
    #[must_use]
    pub fn after(mut self, id: Ulid) -> Self {
        self.after = Some(id);
        self
    }

    /// Only items before `id`.
    #[must_use]
    pub fn before(mut self, id: Ulid) -> Self {
        self.before = Some(id);
        self
    }

    /// Cuts a result of up to `count + 1` rows into a page. Rows come in the query order:
    /// ascending IDs going forward, descending going backward.
    #[must_use]
    pub fn process<T>(&self, mut rows: Vec<T>) -> Page<T> {
        let more = rows.len() > self.count;
        rows.truncate(self.count);
        match self.direction {
            PaginationDirection::Forward => Page {
                edges: rows,
                has_next_page: more,
                has_previous_page: self.after.is_some(),
            },
            PaginationDirection::Backward => {
                rows.reverse();
                Page {
                    edges: rows,
                    has_next_page: self.before.is_some(),
                    has_previous_page: more,
                }
            }
        }
    }
}

/// One page of results, in ascending ID order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub edges: Vec<T>,
    /// Whether items follow this page.
    pub has_next_page: bool,
    /// Whether items precede this page.
    pub has_previous_page: bool,
}

impl<T> Page<T> {
    /// Applies `f` to every item.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            edges: self.edges.into_iter().map(f).collect(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
        }
    }
}

//! Reading the JSON ravencert prints (`plan --json`, `status --json`): the items of a list
//! picked by a field, and fields of every item.

use serde_json::Value;

/// The items of the array `list` (panics when it is not an array).
pub fn items(list: &Value) -> &[Value] {
    list.as_array().unwrap()
}

/// The first item of the array `list` whose `field` is `value`.
pub fn find<'a>(list: &'a Value, field: &str, value: &str) -> Option<&'a Value> {
    items(list).iter().find(|c| c[field] == value)
}

/// The items of the array `list` whose `field` is `value`.
pub fn filter<'a>(list: &'a Value, field: &str, value: &str) -> Vec<&'a Value> {
    items(list).iter().filter(|c| c[field] == value).collect()
}

/// The string `field` of every item of the array `list` (panics when one is not a string).
pub fn strs<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    items(list)
        .iter()
        .map(|c| c[field].as_str().unwrap())
        .collect()
}

/// The string fields `a` and `b` of every item of the array `list`, in its order.
pub fn string_pairs(list: &Value, a: &str, b: &str) -> Vec<(String, String)> {
    items(list)
        .iter()
        .map(|c| {
            (
                c[a].as_str().unwrap().to_string(),
                c[b].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

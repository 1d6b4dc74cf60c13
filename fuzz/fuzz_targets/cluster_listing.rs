//! Fuzzes the decoder of a cluster's certificate listing (`GET /admin/certificates`): what a
//! cluster sends is untrusted. Any input gives a listing (with the entries it left out) or an
//! error, never a panic; a listing never holds an entry whose thumbprint is not its
//! certificate's, nor a collection link that only one side makes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(listing) = ravencert::ravendb::decode_listing_bytes(data) {
        for r in &listing.registrations {
            assert_eq!(r.thumbprint.as_str().len(), 40);
            if let Some(p) = &r.collection_primary {
                let primary = listing.registrations.iter().find(|x| x.thumbprint == *p);
                let lists_it = |x: &ravencert::plan::Registration| {
                    x.collection_secondaries.iter().any(|s| r.thumbprint == *s)
                };
                assert!(primary.is_some_and(lists_it));
            }
        }
    }
});

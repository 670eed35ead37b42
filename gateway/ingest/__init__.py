"""From a decoded body to stream entries: validation, enrichment, the sources table
(writeKey -> source). Speaks neither HTTP nor Redis."""

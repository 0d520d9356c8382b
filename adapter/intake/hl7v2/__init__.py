"""HL7 v2 DFT^P03 / DFT^P11 intake: ER7 -> the same FHIR R4 Bundle the FHIR intake reads."""

from adapter.intake.hl7v2.mapping import Hl7v2Mapping, load_mapping, packaged_mapping
from adapter.intake.hl7v2.message import V2Outcome, content_digest, convert_message

__all__ = ["Hl7v2Mapping", "V2Outcome", "content_digest", "convert_message", "load_mapping", "packaged_mapping"]

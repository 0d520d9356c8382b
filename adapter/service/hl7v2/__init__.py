"""The HL7 v2 door: MLLP listener, POST /hl7v2, and the commit-then-ACK service they share."""

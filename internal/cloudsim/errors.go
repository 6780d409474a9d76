package cloudsim

import "fmt"

// ApiErrorCode values (HTTP status and "errorcode").
const (
	codeUnauthorized = 401
	codeAPILimit     = 429 // API_LIMIT_EXCEED: the account's API throttling
	codeParam        = 431
	codeInternal     = 530
	codeAccount      = 531
	codeUnavailable  = 534
	codeLimit        = 535
)

// CSExceptionErrorCode values ("cserrorcode"), named after the Java exception.
const (
	csRuntime          = 4250 // CloudRuntimeException
	csInvalidParameter = 4350 // InvalidParameterValueException
	csPermission       = 4365 // PermissionDeniedException
	csResourceLimit    = 4370 // ResourceAllocationException
	csUnavailable      = 4380 // ResourceUnavailableException
	csGeneric          = 9999 // ServerApiException raised by the parameter processor
)

const authFailedText = "unable to verify user credentials and/or request signature"

// apiError is a rejection answered synchronously, or the reason a job failed.
type apiError struct {
	Code   int
	CSCode int // 0 for authentication failures, which CloudStack sends without one
	Text   string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d/%d: %s", e.Code, e.CSCode, e.Text) }

func errAuth() *apiError { return &apiError{Code: codeUnauthorized, Text: authFailedText} }

// errInvalid is InvalidParameterValueException: CloudStack's rule violations.
func errInvalid(format string, args ...any) *apiError {
	return &apiError{Code: codeParam, CSCode: csInvalidParameter, Text: fmt.Sprintf(format, args...)}
}

// errMissing and the two errBad* are raised before the command runs, by the
// parameter processor, which names the command in lower case without "response".
func errMissing(cmd, param string) *apiError {
	return &apiError{Code: codeParam, CSCode: csGeneric,
		Text: fmt.Sprintf("Unable to execute API command %s due to missing parameter %s", cmd, param)}
}

// errBadEntity is an id that names no entity (ever: removed ones still resolve).
func errBadEntity(cmd, param, value string) *apiError {
	return &apiError{Code: codeParam, CSCode: csGeneric, Text: fmt.Sprintf(
		"Unable to execute API command %s due to invalid value. Invalid parameter %s value=%s "+
			"due to incorrect long value format, or entity does not exist or due to incorrect "+
			"parameter annotation for the field in api cmd class.", cmd, param, value)}
}

// errBadValue is a value that does not parse as the parameter's type.
func errBadValue(cmd, param, value string) *apiError {
	return &apiError{Code: codeParam, CSCode: csGeneric,
		Text: fmt.Sprintf("Unable to execute API command %s due to invalid value %s for parameter %s", cmd, value, param)}
}

// textPermission is what CloudStack's parameter processor answers when the caller's
// account may not use an entity it names (a volume or VM of another account).
const textPermission = "Caller does not have permission to operate with provided resource"

// errPermission is PermissionDeniedException, which the API server maps to 531.
func errPermission() *apiError {
	return &apiError{Code: codeAccount, CSCode: csPermission, Text: textPermission}
}

func errInternal(text string) *apiError {
	return &apiError{Code: codeInternal, CSCode: csRuntime, Text: text}
}

func errVolumeLimit(a *Account, limit, current int) *apiError {
	return &apiError{Code: codeLimit, CSCode: csResourceLimit, Text: fmt.Sprintf(
		"Maximum amount of resources of Type = 'volume' for Account Name = %s in Domain Id = %d is exceeded: "+
			"Account Resource Limit = %d, Current Account Resource Amount = %d, Requested Resource Amount = 1.",
		a.Name, a.DomainInternalID, limit, current)}
}

// Texts of the rules CloudStack enforces on volumes (reference table).
const (
	textVolumeAttached  = "Please specify a volume that is not attached to any VM."
	textVMState         = "Please specify a VM that is either running or stopped."
	textVMZone          = "Please specify a VM that is in the same zone as the volume."
	textNotAttached     = "The specified volume is not attached to a VM."
	textCustomNeedsSize = "This disk offering requires a custom size specified"
	textFixedNoSize     = "This disk offering does not allow custom size"
	textInternal        = "Internal error executing command, please contact your system administrator"
	textHostUnreachable = "Resource [Host:1] is unreachable: Host 1: Host with specified id is not in the right state: Disconnected"
	textDetachNeedsIDs  = "Please provide either a volume id, or a tuple(device id, instance id)"
	textRootHypervisor  = "Root volume detach is not supported for hypervisor type %s"
	textRootVMState     = "Root volume detach can happen only when vm is in states: Stopped or Destroyed"
	textHasRoot         = "Vm already has root volume attached to it"
	// textNoRootVolume (the VM's name) is the simulator's own: CloudStack has no
	// check of its own for starting a VM without a root disk.
	textNoRootVolume     = "Unable to start VM %s: it has no root volume"
	textNeedOfferingOrSn = "Either disk Offering Id or snapshot Id must be passed whilst creating volume"
	// textVolumeInTransition (volume id, "attached" or "detached") is not confirmed
	// against CloudStack's source: see errVolumeInTransition.
	textVolumeInTransition = "Volume %s is being %s by a job in progress; retry once the job has completed"
)

// errVolumeInTransition refuses to delete or detach a volume that an attach or detach job
// is still working on. CloudStack refuses these while the volume is in a transitional
// state (it moves through Attaching and the like while a VM work job holds it); this text
// and its 431/4350 are the simulator's own, NOT confirmed against CloudStack's source.
func errVolumeInTransition(volumeID, change string) *apiError {
	return errInvalid(textVolumeInTransition, volumeID, change)
}

func errMaxDataDisks(max int) *apiError {
	return errInvalid("The specified VM already has the maximum number of data disks (%d) attached. Please specify another VM.", max)
}
